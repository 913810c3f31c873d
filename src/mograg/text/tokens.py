"""Token counting with the bundled all-MiniLM-L6-v2 WordPiece tokenizer.

A "token" everywhere in mograg (level sizes, budgets) is one WordPiece of this
tokenizer, so budgets mean the same thing whatever embedder is configured.
The tokenizer file ships inside the package (Apache-2.0, sentence-transformers).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from tokenizers import Tokenizer


@lru_cache(maxsize=1)
def wordpiece() -> Tokenizer:
    """The bundled tokenizer with padding and truncation turned off."""
    data = resources.files("mograg").joinpath("data/minilm-tokenizer.json.gz").read_bytes()
    tok = Tokenizer.from_str(gzip.decompress(data).decode("utf-8"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def count_tokens(texts: list[str]) -> list[int]:
    """Number of WordPieces (without [CLS]/[SEP]) in each text."""
    if not texts:
        return []
    encs = wordpiece().encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encs]


def token_char_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every WordPiece of ``text``."""
    return list(wordpiece().encode(text, add_special_tokens=False).offsets)
