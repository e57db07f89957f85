"""Ingestion: jobs, the queue, the pipeline, progress events and their streams."""
