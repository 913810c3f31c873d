"""Hostile inputs for the fuzz tests and bench/fuzz.py (importable as ``hostile``).

``seeds()`` gives one small valid file per supported type; ``mutate()`` damages one
at random (bit flips, cuts, repeats, splices of known-bad snippets); ``named_cases()``
are the inputs issue 17 found problems with, small enough for CI.
"""

from __future__ import annotations

import gzip
import io
import json
import random

SUFFIXES = (".txt", ".md", ".html", ".pdf", ".jsonl", ".jsonl.gz")

TEXT = (
    "Herons stand still in shallow water. They strike at passing fish with a quick "
    "thrust of the bill.\n\nIn winter they move to open water that does not freeze. "
    "Young herons leave the nest after seven weeks."
)

# snippets spliced into files: each broke something once
SNIPPETS: tuple[bytes, ...] = (
    b"\\ud800",
    b'{"id": "\\udfff", "text": "x"}',
    b"[" * 3000,
    b'{"a":' * 3000,
    b"9" * 5000,
    b"1e999",
    b"NaN",
    b"\xff\xfe",
    b"\x00" * 16,
    b"\xed\xa0\x80",  # an encoded surrogate: not valid UTF-8
    b"# a" + b" " * 20000 + b"b",
    b"a" * 50000,
    b"\n" * 50000,
    b"<div>" * 3000,
    b"<table><tr><td>" * 1000,
    b"```\n" * 100,
    b"\r" * 1000,
    "\u202e\u200b\ufeff한국어\U0001f600".encode(),
)


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A small real PDF with one text line per page (pypdf's writer)."""
    from pypdf import PdfWriter
    from pypdf.generic import (
        DecodedStreamObject,
        DictionaryObject,
        NameObject,
    )

    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        font = DictionaryObject({
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        })
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})
        })
        safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if title:
        writer.add_metadata({"/Title": title})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def seeds() -> dict[str, bytes]:
    """One small valid file per supported suffix."""
    lines = [json.dumps({"id": f"r{i}", "text": s, "metadata": {"n": i, "tags": ["a", "b"]}})
             for i, s in enumerate(TEXT.split(". "))]
    jsonl = ("\n".join(lines) + "\n").encode()
    return {
        ".txt": TEXT.encode(),
        ".md": ("# Herons\n\n- fish\n- frogs\n\n```\ncode\n```\n\n" + TEXT).encode(),
        ".html": (f"<html><head><title>Herons</title></head><body><h1>Herons</h1>"
                  f"<p>{TEXT}</p><ul><li>fish</li></ul><table><tr><td>a</td></tr></table>"
                  "</body></html>").encode(),
        ".pdf": make_pdf(TEXT.split("\n\n"), "Herons"),
        ".jsonl": jsonl,
        ".jsonl.gz": gzip.compress(jsonl, mtime=0),
    }


def mutate(data: bytes, rng: random.Random, suffix: str) -> bytes:
    """``data`` damaged by 1-4 random operations (gzip data may be damaged before or
    after compression)."""
    if suffix == ".jsonl.gz" and rng.random() < 0.5:
        return gzip.compress(mutate(gzip.decompress(data), rng, ".jsonl"), mtime=0)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip bits
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # cut the tail
            del buf[pos:]
        elif op == 2 and buf:  # delete a range
            del buf[pos : pos + rng.randint(1, 64)]
        elif op == 3:  # repeat a range
            chunk = bytes(buf[pos : pos + rng.randint(1, 256)])
            buf[pos:pos] = chunk * rng.randint(2, 200)
        elif op == 4:  # splice a known-bad snippet
            buf[pos:pos] = rng.choice(SNIPPETS)
        elif op == 5:  # random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:  # replace a byte with a structural character
            if buf:
                buf[min(pos, len(buf) - 1)] = rng.choice(b'{}[]":,\\<>#\n')
    return bytes(buf)


def named_cases() -> dict[str, tuple[str, bytes]]:
    """Issue 17's hostile file contents, by case name: ``(suffix, bytes)``."""
    good = json.dumps({"id": "g", "text": TEXT}).encode()
    return {
        "surrogate-id": (".jsonl", b'{"id": "\\ud800", "text": "x"}\n' + good),
        "surrogate-text": (".jsonl", b'{"id": "s", "text": "a\\udfffb"}\n' + good),
        "deep-metadata": (".jsonl", b'{"id": "d", "text": "t", "metadata": '
                          + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}\n" + good),
        "deep-array": (".jsonl", b'{"id": "a", "text": "t", "metadata": {"x": '
                       + b"[" * 200_000 + b"]" * 200_000 + b"}}\n" + good),
        "huge-number": (".jsonl", b'{"id": "n", "text": "t", "metadata": {"x": '
                        + b"9" * 5000 + b"}}\n" + good),
        "md-title-spaces": (".md", b"# a" + b" " * 100_000 + b"b\n\nbody text."),
        "gzip-blank-bomb": (".jsonl.gz", gzip.compress(b"\n" * 100_000_000, 9, mtime=0)),
        "one-long-run": (".txt", b"a" * 1_000_000),
        "whitespace-only-jsonl": (".jsonl", b'{"id": "w", "text": " \\n\\t "}\n'),
        "whitespace-only-txt": (".txt", b" \n\t \n"),
        "html-deep": (".html", b"<div>" * 50_000 + b"x" + b"</div>" * 50_000),
        "html-unclosed": (".html", b"<p><b><i>" * 20_000 + b"text"),
        "utf16": (".txt", "herons".encode("utf-16")),
        "nul-bytes": (".txt", b"abc\x00def"),
        "invalid-utf8": (".md", b"caf\xe9 au lait"),
        "empty-pdf": (".pdf", b""),
        "truncated-pdf": (".pdf", seeds()[".pdf"][:300]),
        "truncated-gzip": (".jsonl.gz", seeds()[".jsonl.gz"][:40]),
        "not-gzip": (".jsonl.gz", b"plain text, not gzip"),
        "jsonl-list": (".jsonl", b"[1, 2, 3]\n" + good),
        "jsonl-nan": (".jsonl", b'{"id": "x", "text": "t", "metadata": {"v": NaN}}\n' + good),
    }
