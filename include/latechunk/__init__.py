"""Late-chunking ingestion core, free of Airflow: ``sources`` (objects and their text), ``chunking`` (spans),
``embedding`` (encoders, late chunking, pooling), ``index`` (the search backend), ``staging`` (batches between
tasks), ``validation``, ``reporting``, ``evaluation``, and ``pipeline`` (one module per task). See
docs/architecture.md."""

__version__ = "0.1.0"
