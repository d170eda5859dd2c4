"""Late-chunking ingestion core: spans, encoders, pooling, staging and the search index, free of Airflow."""

__version__ = "0.1.0"
