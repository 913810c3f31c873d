"""Retrieval: per-level ranking, budget assembly, granularities, routers."""
