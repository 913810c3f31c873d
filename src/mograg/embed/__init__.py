"""Embedders: the bundled int8 MiniLM, sentence-transformers, OpenAI-compatible APIs; the
vector cache."""
