"""Tests for mograg.text.documents: loading files into Documents, with problems reported."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from mograg.errors import InputError
from mograg.text.documents import LoadProblem, iter_documents, load_documents


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per input line."""
    font_id = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
    ]
    for i, text in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n") if text else []:
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({esc}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = None
    if title:
        objs.append(f"<< /Title ({title}) >>".encode())
        info = len(objs)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = f"<< /Size {len(objs) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "")
    out += b"trailer\n" + trailer.encode() + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def load(*paths: Path | str) -> tuple[dict[str, object], list[LoadProblem]]:
    docs, problems = load_documents([str(p) for p in paths])
    return {d.id: d for d in docs}, problems


def only_problem(problems: list[LoadProblem], path: Path | str) -> str:
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].path == Path(path).as_posix()
    text = str(problems[0])
    assert text.startswith(f"{Path(path).as_posix()}: ")
    assert "\n" not in text
    return problems[0].message


# ------------------------------------------------------------------ good inputs


def test_txt_crlf_and_bom(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(b"\xef\xbb\xbfLine one.\r\nLine two.\r\n")
    docs, problems = load_documents([p])
    assert problems == []
    (doc,) = docs
    assert doc.id == "notes.txt"  # a file given directly: its name
    assert doc.text == "Line one.\nLine two.\n"
    assert doc.metadata == {"source": p.as_posix(), "title": "notes"}


def test_markdown_title(tmp_path: Path) -> None:
    p = tmp_path / "guide.md"
    p.write_text("```\n# not a title\n```\nIntro.\n\n# Real Title #\n\nBody text.\n")
    docs, problems = load_documents([p])
    assert problems == []
    assert docs[0].metadata["title"] == "Real Title"
    assert "Body text." in docs[0].text


def test_html_extraction(tmp_path: Path) -> None:
    p = tmp_path / "page.html"
    p.write_text(
        "<html><head><title> The  Page </title><style>p{color:red}</style></head>"
        "<body><nav>Home | About</nav><script>var x = 1;</script>"
        "<h1>Heading</h1><p>First paragraph ends here</p><p>Second &amp; <b>bold</b>"
        " paragraph.<br>After break.</p><ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>"
        "<pre>code  line 1\n    indented line 2</pre><!-- a comment --></body></html>",
        encoding="utf-8",
    )
    docs, problems = load_documents([p])
    assert problems == []
    doc = docs[0]
    assert doc.metadata["title"] == "The Page"
    for junk in ("color:red", "var x", "Home", "comment", "The  Page"):
        assert junk not in doc.text
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[:3] == [
        "Heading",
        "First paragraph ends here",
        "Second & bold paragraph.\nAfter break.",
    ]
    assert "- one\n- two" in doc.text
    assert "| a | b\n| c" in doc.text
    assert "code  line 1\n    indented line 2" in doc.text


def test_pdf(tmp_path: Path) -> None:
    p = tmp_path / "report.pdf"
    p.write_bytes(make_pdf(["Hello PDF world. Second sentence.", "Page two (text)."], "My Report"))
    assert "Hello PDF world" in PdfReader(p).pages[0].extract_text()
    docs, problems = load_documents([p])
    assert problems == []
    doc = docs[0]
    assert doc.text == "Hello PDF world. Second sentence.\n\nPage two (text)."
    assert doc.metadata == {"source": p.as_posix(), "title": "My Report", "pages": 2,
                            "page_starts": [0, 35], "headings": []}
    assert doc.text[35:].startswith("Page two")


def test_pdf_page_starts_skip_empty_pages(tmp_path: Path) -> None:
    from mograg.integrations.spans import page_of

    p = tmp_path / "gap.pdf"
    p.write_bytes(make_pdf(["First page.", "", "Third page."]))
    doc = load_documents([p])[0][0]
    starts = doc.metadata["page_starts"]
    assert starts == [0, 11, 13] and doc.text[13:] == "Third page."  # empty page: a point
    assert [page_of(doc.metadata, i) for i in (0, 10, 13, 20)] == [1, 1, 3, 3]


def test_pdf_title_falls_back_to_stem(tmp_path: Path) -> None:
    p = tmp_path / "untitled.pdf"
    p.write_bytes(make_pdf(["Some text."]))
    docs, _ = load_documents([p])
    assert docs[0].metadata["title"] == "untitled"


def _jsonl_lines() -> list[str]:
    return [
        json.dumps({"id": "a", "text": "Alpha text.", "metadata": {"title": "A", "x": 1}}),
        "",
        "{not json",
        json.dumps({"text": "No id here."}),
        json.dumps({"id": "c", "text": 5}),
        json.dumps({"id": "d"}),
        json.dumps({"id": "e", "text": "Bad meta", "metadata": [1]}),
        json.dumps({"id": 7, "text": "Int id"}),
        json.dumps(["a list"]),
        json.dumps({"id": "f", "text": "   "}),
        json.dumps({"id": "g", "text": "Gamma text.\r\nkept as is"}),
    ]


def _check_jsonl(path: Path, docs: list, problems: list[LoadProblem]) -> None:
    shown = path.as_posix()
    assert [d.id for d in docs] == ["a", f"{path.name}#4", "g"]
    assert docs[0].metadata == {"title": "A", "x": 1, "source": shown}
    assert docs[2].text == "Gamma text.\r\nkept as is"  # JSONL text is never altered
    assert [p.path for p in problems] == [f"{shown}:{n}" for n in (3, 5, 6, 7, 8, 9, 10)]
    msgs = [str(p) for p in problems]
    assert msgs[0].startswith(f"{shown}:3: invalid JSON (")
    assert msgs[0].endswith("; fix or remove the line")
    assert "'text' must be a string" in msgs[1]
    assert "missing 'text'" in msgs[2]
    assert "'metadata' must be an object" in msgs[3]
    assert "'id' must be a non-empty string" in msgs[4]
    assert "expected a JSON object" in msgs[5]
    assert "'text' is empty" in msgs[6]


def test_jsonl_bad_lines_reported_good_lines_loaded(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl"
    p.write_text("\n".join(_jsonl_lines()) + "\n", encoding="utf-8")
    docs, problems = load_documents([p])
    _check_jsonl(p, docs, problems)


def test_jsonl_gz(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(_jsonl_lines()) + "\n")
    docs, problems = load_documents([p])
    _check_jsonl(p, docs, problems)


def test_real_evalset_format() -> None:
    p = Path("/work/shared/evalsets/chroma-dev/docs.jsonl.gz")
    if not p.exists():
        pytest.skip("shared eval sets not available")
    docs, problems = load_documents([p])
    assert problems == []
    assert {d.id for d in docs} == {"chatlogs", "state_of_the_union", "wikitexts"}


def test_directory_walk(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b.txt").write_text("Bee.")
    (root / "a.md").write_text("# A\n\nAy.")
    (root / "sub" / "c.htm").write_text("<p>See.</p>")
    (root / "sub" / "image.png").write_bytes(b"\x89PNG\x00\x00")
    (root / ".secret.txt").write_text("hidden")
    (root / ".hidden" / "x.txt").write_text("hidden")
    (root / "sub" / "d.jsonl").write_text(json.dumps({"id": "j1", "text": "Jay."}) + "\n")
    docs, problems = load_documents([root])
    assert problems == []
    base = root.as_posix()
    # ids relative to the folder indexed; the source keeps the path as given
    assert [d.id for d in docs] == ["a.md", "b.txt", "sub/c.htm", "j1"]
    assert docs[2].metadata["source"] == f"{base}/sub/c.htm"
    assert docs[0].metadata["title"] == "A"
    # The same load is stable: ids do not depend on how the folder was written.
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        rel_docs, _ = load_documents(["corpus/"])
        rel_docs2, _ = load_documents(["corpus"])
    finally:
        os.chdir(cwd)
    assert [d.id for d in rel_docs] == ["a.md", "b.txt", "sub/c.htm", "j1"]
    assert [d.id for d in rel_docs2] == [d.id for d in rel_docs]
    assert rel_docs[0].metadata["source"] in ("corpus/a.md", "corpus//a.md")


def test_iter_documents_is_lazy_and_accepts_single_path(tmp_path: Path) -> None:
    p = tmp_path / "one.txt"
    p.write_text("One.")
    problems: list[LoadProblem] = []
    it = iter_documents(p, problems)
    assert next(it).text == "One."
    assert list(it) == []
    assert problems == []


# ------------------------------------------------------------------ bad inputs


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_text("  \n\t\n")
    docs, problems = load_documents([p])
    assert docs == []
    assert only_problem(problems, p) == "empty file; nothing to index"


def test_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "blob.txt"
    p.write_bytes(b"abc\x00\x01\x02def")
    _, problems = load_documents([p])
    assert only_problem(problems, p).startswith("looks binary")


def test_invalid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.md"
    p.write_bytes("café au lait".encode("latin-1"))
    _, problems = load_documents([p])
    assert only_problem(problems, p) == "not valid UTF-8 (byte 3); convert it to UTF-8"


def test_missing_path(tmp_path: Path) -> None:
    p = tmp_path / "nope.txt"
    _, problems = load_documents([p])
    assert only_problem(problems, p) == "no such file or directory"


def test_unsupported_suffix_named_explicitly(tmp_path: Path) -> None:
    p = tmp_path / "data.xyz"
    p.write_text("text")
    _, problems = load_documents([p])
    msg = only_problem(problems, p)
    assert msg.startswith("unsupported file type '.xyz'; supported: .txt, .md")


def test_garbage_pdf(tmp_path: Path) -> None:
    p = tmp_path / "broken.pdf"
    p.write_bytes(b"this is not a pdf at all " * 20)
    docs, problems = load_documents([p])
    assert docs == []
    msg = only_problem(problems, p)
    assert msg.startswith("cannot read PDF: not a readable PDF (") and "PDF viewer" in msg


def test_pdf_without_text(tmp_path: Path) -> None:
    p = tmp_path / "scan.pdf"
    p.write_bytes(make_pdf([""]))
    _, problems = load_documents([p])
    msg = only_problem(problems, p)
    assert msg.startswith("cannot read PDF: no text layer (1 page(s) of images") and "OCR" in msg


def test_encrypted_pdf(tmp_path: Path) -> None:
    src = tmp_path / "plain.pdf"
    src.write_bytes(make_pdf(["Secret text."]))
    writer = PdfWriter(clone_from=src)
    writer.encrypt("pw", algorithm="RC4-128")
    p = tmp_path / "locked.pdf"
    with open(p, "wb") as fh:
        writer.write(fh)
    _, problems = load_documents([p])
    msg = only_problem(problems, p)
    assert msg == "cannot read PDF: encrypted (password-protected); decrypt it first"


def test_html_without_text(tmp_path: Path) -> None:
    p = tmp_path / "blank.html"
    p.write_text("<html><head><title>T</title></head><body><script>x()</script></body></html>")
    _, problems = load_documents([p])
    assert "no visible text" in only_problem(problems, p)


def test_duplicate_ids(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({"id": "x", "text": "First."}) + "\n")
    b = tmp_path / "b.jsonl"
    b.write_text(
        json.dumps({"id": "y", "text": "Y."}) + "\n" + json.dumps({"id": "x", "text": "2"})
    )
    docs, problems = load_documents([a, b])
    assert [d.text for d in docs] == ["First.", "Y."]
    assert len(problems) == 1
    assert str(problems[0]) == (
        f"{b.as_posix()}:2: duplicate document id 'x' (first at {a.as_posix()}:1); "
        "ids must be unique"
    )


def test_same_file_twice_is_duplicate(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("Text.")
    docs, problems = load_documents([p, p])
    assert len(docs) == 1
    assert "duplicate document id" in only_problem(problems, p)


def test_bad_gzip(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(b"plain text, not gzip\n")
    _, problems = load_documents([p])
    assert "not a valid gzip file" in only_problem(problems, p)


def test_truncated_gzip_keeps_earlier_lines(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl.gz"
    lines = "".join(
        json.dumps({"id": f"d{i}", "text": f"Doc {i} " * 50}) + "\n" for i in range(200)
    )
    data = gzip.compress(lines.encode())
    p.write_bytes(data[: len(data) // 2])
    docs, problems = load_documents([p])
    assert 0 < len(docs) < 200
    assert "truncated or corrupt" in only_problem(problems, p)


def test_empty_directory(tmp_path: Path) -> None:
    d = tmp_path / "nothing"
    d.mkdir()
    (d / "x.bin").write_bytes(b"\x00")
    _, problems = load_documents([d])
    assert only_problem(problems, d).startswith("no supported files in directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.txt"
    p.write_text("x")
    p.chmod(0)
    try:
        _, problems = load_documents([p])
    finally:
        p.chmod(0o600)
    assert "permission denied" in only_problem(problems, p)


def test_problems_do_not_stop_other_files(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Good.")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    docs, problems = load_documents([bad, tmp_path / "missing.md", good])
    assert [d.text for d in docs] == ["Good."]
    assert [p.path for p in problems] == [bad.as_posix(), (tmp_path / "missing.md").as_posix()]


def test_strict_raises_input_error(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_text("")
    with pytest.raises(InputError, match=r"empty\.txt: empty file"):
        load_documents([p], strict=True)
