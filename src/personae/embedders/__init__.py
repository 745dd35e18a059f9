"""Embedders: the ``Embedder`` port on sentence-transformers (the packaged MiniLM) and on any
OpenAI-compatible ``/v1/embeddings`` server."""
