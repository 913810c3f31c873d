"""Text: loading documents, sentence segments, WordPiece counts, the level tree."""
