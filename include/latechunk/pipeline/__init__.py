"""The pipeline's stages as plain functions over clients and a staging area; the Airflow operators call these."""

from latechunk.pipeline.check import ValidationSettings, validate
from latechunk.pipeline.embed import annotate, embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.load import index, swap_alias

__all__ = ["ExtractSettings", "ValidationSettings", "annotate", "embed", "extract", "index", "swap_alias", "validate"]
