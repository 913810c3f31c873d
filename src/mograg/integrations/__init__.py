"""Adapters that let other frameworks use a mograg index.

- :mod:`mograg.integrations.llamaindex` — a LlamaIndex retriever (``mograg[llamaindex]``).
- :mod:`mograg.integrations.langchain` — a LangChain retriever (``mograg[langchain]``).
- :mod:`mograg.integrations.mcp_server` — a Model Context Protocol server (``mograg[mcp]``),
  run by ``mograg mcp``.
- :mod:`mograg.integrations.spans` — what they share: search options and span metadata.

Each module imports its framework on import; this package itself imports nothing heavy.
"""
