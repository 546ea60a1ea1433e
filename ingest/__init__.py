"""Ingest side: read files, chunk them, embed the chunks and write the index."""
