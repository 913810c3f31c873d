"""The Index (create/open/add/delete/search) and streamed parallel ingestion."""
