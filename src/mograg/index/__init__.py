"""The Index (create/open/add/delete/search), its settings, segment building, streamed
parallel ingestion and migrations."""
