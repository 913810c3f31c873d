"""Token counting with the bundled all-MiniLM-L6-v2 WordPiece tokenizer.

A "token" everywhere in mograg (level sizes, budgets) is one WordPiece of this
tokenizer, so budgets mean the same thing whatever embedder is configured.
The tokenizer file ships inside the package (Apache-2.0, sentence-transformers).

WordPiece maps a word of more than 100 characters to one ``[UNK]``, and whitespace
costs nothing, so a text is also charged at least one token per
:data:`MAX_TOKEN_CHARS` characters: the characters of anything counted as ``n``
tokens are at most ``n * MAX_TOKEN_CHARS`` (ordinary text, about 4-5 characters per
WordPiece, is never affected; the longest vocabulary entry has 18 characters).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from tokenizers import Tokenizer

MAX_TOKEN_CHARS = 24
"""Characters one token may stand for (see the module docstring)."""


@lru_cache(maxsize=1)
def wordpiece() -> Tokenizer:
    """The bundled tokenizer with padding and truncation turned off."""
    data = resources.files("mograg").joinpath("data/minilm-tokenizer.json.gz").read_bytes()
    tok = Tokenizer.from_str(gzip.decompress(data).decode("utf-8"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def charged(n_wordpieces: int, n_chars: int) -> int:
    """Tokens charged for a text of ``n_chars`` characters and ``n_wordpieces`` WordPieces."""
    return max(n_wordpieces, -(-n_chars // MAX_TOKEN_CHARS))


def count_tokens(texts: list[str]) -> list[int]:
    """Tokens of each text: its WordPieces (without [CLS]/[SEP]), but at least one per
    :data:`MAX_TOKEN_CHARS` characters."""
    if not texts:
        return []
    encs = wordpiece().encode_batch(texts, add_special_tokens=False)
    return [charged(len(e.ids), len(t)) for e, t in zip(encs, texts, strict=True)]


def split_long_tokens(
    offsets: list[tuple[int, int]], tokens: list[str]
) -> tuple[list[tuple[int, int]], list[str]]:
    """Offsets and tokens with every token longer than :data:`MAX_TOKEN_CHARS`
    characters (an ``[UNK]`` for a very long word) cut into pieces of at most that many;
    continuation pieces are marked ``##`` like WordPiece's own."""
    if all(e - s <= MAX_TOKEN_CHARS for s, e in offsets):
        return offsets, tokens
    out_offs: list[tuple[int, int]] = []
    out_toks: list[str] = []
    for (s, e), t in zip(offsets, tokens, strict=True):
        if e - s <= MAX_TOKEN_CHARS:
            out_offs.append((s, e))
            out_toks.append(t)
            continue
        for a in range(s, e, MAX_TOKEN_CHARS):
            out_offs.append((a, min(a + MAX_TOKEN_CHARS, e)))
            out_toks.append(t if a == s else "##")
    return out_offs, out_toks


def token_char_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every token of ``text`` (WordPieces, over-long
    ones cut into pieces of at most :data:`MAX_TOKEN_CHARS` characters)."""
    enc = wordpiece().encode(text, add_special_tokens=False)
    return split_long_tokens(list(enc.offsets), list(enc.tokens))[0]
