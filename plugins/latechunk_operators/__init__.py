"""Thin Airflow operators over the `latechunk` core package: extract, annotate, embed, index, validate."""

from latechunk_operators.annotate import LateChunkAnnotateOperator
from latechunk_operators.embed import LateChunkEmbedOperator
from latechunk_operators.extract import LateChunkExtractOperator
from latechunk_operators.index import LateChunkIndexOperator, LateChunkSwapAliasOperator
from latechunk_operators.validate import LateChunkValidateOperator

__all__ = [
    "LateChunkAnnotateOperator",
    "LateChunkEmbedOperator",
    "LateChunkExtractOperator",
    "LateChunkIndexOperator",
    "LateChunkSwapAliasOperator",
    "LateChunkValidateOperator",
]
