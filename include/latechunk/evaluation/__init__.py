"""Retrieval-quality evaluation of chunking strategies on BEIR-format datasets."""
