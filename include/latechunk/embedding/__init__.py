"""Chunk vectors: the encoders, late chunking over whole documents and windows, span pooling and batching."""
