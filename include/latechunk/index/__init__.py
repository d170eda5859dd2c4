"""The search index: its spec and mapping, the backend interface, and the Elasticsearch backend."""
