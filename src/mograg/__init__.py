"""mograg: Mix-of-Granularity retrieval for RAG.

Index every document at several chunk sizes at once and pick (or mix) the right
granularity per query.
"""

from mograg.errors import MogragError
from mograg.types import Document, Hit, SearchResult

__all__ = ["Document", "Hit", "Index", "MogragError", "SearchResult"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Index pulls in onnxruntime and bm25s; import it lazily so `import mograg` stays cheap.
    if name == "Index":
        from mograg.index.core import Index

        return Index
    raise AttributeError(name)
