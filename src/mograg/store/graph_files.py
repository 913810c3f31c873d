"""The MoGG graph's files: adjacency over the finest chunks and the title-link targets.

Written beside the index by the graph builder, read by every snapshot when it opens (so
a later garbage collection of the directory cannot break a reader). What the graph means
and how it is walked lives in :mod:`mograg.graph`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mograg.errors import IndexFormatError
from mograg.store.adjacency import Adjacency
from mograg.store.storage import fsync_dir, new_name, write_bytes_durable

GRAPH_FILE = "graph.npz"
TARGETS_FILE = "link-targets.npy"


@dataclass
class Graph:
    """A stored graph: adjacency over the finest chunks and the documents titles link to.

    ``cache`` holds what readers derive from it once (the title matcher).
    """

    adj: Adjacency
    targets: np.ndarray  # document numbers that are title-link targets
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


def save_graph(root: Path, graph: Graph) -> str:
    """Write the graph to a new directory under ``root/graph``; return its name."""
    name = new_name("graph")
    d = root / "graph" / name
    d.mkdir(parents=True)
    buf = io.BytesIO()
    graph.adj.save(buf)
    write_bytes_durable(d / GRAPH_FILE, buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, graph.targets.astype(np.int64), allow_pickle=False)
    write_bytes_durable(d / TARGETS_FILE, buf.getvalue())
    fsync_dir(d)
    return name


def read_graph(directory: Path) -> Graph:
    """Read a stored graph (one written before title targets existed links none)."""
    path = directory / GRAPH_FILE
    try:
        adj = Adjacency.load(path)
        tpath = directory / TARGETS_FILE
        targets = (np.load(tpath, allow_pickle=False).astype(np.int64) if tpath.exists()
                   else np.zeros(0, np.int64))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"graph {directory} is unreadable ({exc}); rebuild it") from None
    return Graph(adj, targets)
