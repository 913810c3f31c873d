"""Text: loading documents (text, Markdown, HTML, PDF, JSONL), sentence segments, WordPiece
counts, the level tree."""
