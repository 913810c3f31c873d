"""Small hand-written corpora shared by the tests (importable as ``corpus``)."""

from __future__ import annotations

# four short topical documents and one question each (same order)
TOPICS = {
    "cats": "Cats sleep for most of the day. A cat purrs when it is content. "
    "Kittens learn to hunt by playing with their siblings. Domestic cats descend from "
    "wildcats of the Near East.",
    "volcano": "A volcano erupts when magma rises through the crust. Lava flows can "
    "destroy villages. Ash clouds disrupt air travel across whole continents. "
    "Vesuvius buried Pompeii in the year 79.",
    "bread": "Bread dough needs yeast, flour, water and salt. The dough rises while the "
    "yeast ferments sugars. Bakers knead the dough to develop gluten. A hot oven gives "
    "the loaf a crisp crust.",
    "chess": "Chess is played on a board of sixty-four squares. Each player starts with "
    "sixteen pieces. The queen is the most powerful piece. Checkmate ends the game.",
}
TOPIC_QUERIES = ["why do cats purr", "what buried Pompeii", "how does yeast make dough rise",
                 "which chess piece is strongest"]

# three longer factual paragraphs
FACTS = {
    "moon": "The Moon orbits the Earth once every twenty-seven days. Its surface is covered "
    "with craters from ancient impacts. Apollo 11 landed there in July 1969. Neil Armstrong "
    "was the first person to walk on it. Astronauts brought back rock samples for study. "
    "The Moon has no atmosphere to speak of. Tides on Earth are caused mostly by its gravity.",
    "coffee": "Coffee beans are the roasted seeds of a tropical shrub. Ethiopia is often "
    "named as the birthplace of coffee. Light roasts keep more of the original acidity. "
    "Espresso is brewed by forcing hot water through fine grounds. A typical cup contains "
    "about ninety milligrams of caffeine. Brazil grows more coffee than any other country.",
    "rivers": "The Nile flows north through eleven countries. The Amazon carries more water "
    "than any other river. Rivers deposit sediment where they meet the sea. Deltas form "
    "when that sediment builds up faster than waves remove it. Dams hold back water to make "
    "electricity.",
}

ANIMALS = ["heron", "otter", "badger", "falcon", "beaver", "lynx", "salmon", "marten"]
PLACES = ["the marsh", "the river delta", "the pine forest", "the high moor", "the lake shore"]
FOODS = ["small fish", "frogs", "beetles", "berries", "voles", "crayfish", "seeds"]
SEASONS = ["winter", "spring", "summer", "autumn"]


def field_notes(seed: int, n: int) -> str:
    """Deterministic, varied English sentences in paragraphs of five (any length needed)."""
    out: list[str] = []
    for i in range(n):
        k = seed * 7919 + i * 104729
        a, p = ANIMALS[k % len(ANIMALS)], PLACES[(k // 3) % len(PLACES)]
        f, s = FOODS[(k // 7) % len(FOODS)], SEASONS[(k // 11) % len(SEASONS)]
        out.append(f"In {s} the {a} of {p} eats {f}, observation {seed}-{i} notes.")
        if i % 5 == 4:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n").strip()
