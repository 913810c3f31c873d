"""Storage: segment files, manifests, snapshots, BM25 postings, the Milvus backend."""
