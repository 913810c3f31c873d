"""Storage: segment files, the manifest, snapshots, BM25 postings, graph files, content keys,
and the search backends (embedded, Milvus) behind one protocol."""
