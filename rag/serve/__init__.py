"""`rag serve`: the HTTP API (and, next, the web page) over one warm pipeline."""
