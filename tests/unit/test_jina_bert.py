from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from latechunk.embedding.checkpoints import is_jina_bert_config
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.encoders.base import resolve_dtype
from latechunk.embedding.encoders.hf_auto import HFAutoEncoder
from latechunk.embedding.encoders.jina_bert import (
    JinaBertEncoder,
    alibi_bias,
    alibi_slopes,
    load_jina_bert_model,
)
from safetensors.numpy import load_file
from safetensors.torch import load_file as load_torch_file

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "jina_bert_tiny"


@pytest.fixture(scope="module")
def golden():
    return load_file(str(GOLDEN_DIR / "golden.safetensors"))


@pytest.fixture(scope="module")
def golden_checkpoint(tmp_path_factory, tiny_tokenizer_dir):
    """The committed golden checkpoint plus a tokenizer, so it loads like a hub checkpoint."""
    directory = tmp_path_factory.mktemp("golden_checkpoint")
    for source in (*GOLDEN_DIR.glob("*.json"), GOLDEN_DIR / "model.safetensors", *tiny_tokenizer_dir.iterdir()):
        if source.name != "config.json" or source.parent == GOLDEN_DIR:
            shutil.copy(source, directory / source.name)
    return directory


def assert_matches_golden(hidden: np.ndarray, golden) -> None:
    valid = golden["attention_mask"].astype(bool)
    assert valid.sum() < valid.size, "the fixture has padding in one row"
    np.testing.assert_allclose(hidden[valid], golden["last_hidden_state"][valid], atol=1e-4, rtol=0)


def test_parity_with_the_reference_implementation(golden_checkpoint, golden):
    encoder = load_encoder(golden_checkpoint, device="cpu")
    assert isinstance(encoder, JinaBertEncoder)
    assert encoder.dtype == torch.float32 and encoder.max_length == 64 and encoder.dim == 48
    with torch.inference_mode():
        hidden = encoder.forward_tokens(
            torch.from_numpy(golden["input_ids"]), torch.from_numpy(golden["attention_mask"])
        ).numpy()
    assert_matches_golden(hidden, golden)


def test_parity_from_pytorch_model_bin_with_a_bert_prefix(tmp_path, golden):
    state = {f"bert.{name}": tensor for name, tensor in load_torch_file(GOLDEN_DIR / "model.safetensors").items()}
    state["cls.predictions.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "pytorch_model.bin")
    shutil.copy(GOLDEN_DIR / "config.json", tmp_path / "config.json")
    model = load_jina_bert_model(tmp_path, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        hidden = model(torch.from_numpy(golden["input_ids"]), torch.from_numpy(golden["attention_mask"]))
    assert_matches_golden(hidden.numpy(), golden)


def test_padding_does_not_change_real_tokens(golden_checkpoint, golden):
    model = load_jina_bert_model(golden_checkpoint, torch.device("cpu"), torch.float32)
    row, length = 1, int(golden["attention_mask"][1].sum())
    with torch.inference_mode():
        alone = model(torch.from_numpy(golden["input_ids"][row : row + 1, :length]))
    np.testing.assert_allclose(alone[0].numpy(), golden["last_hidden_state"][row, :length], atol=1e-4)


def test_missing_parameters_are_reported(tmp_path):
    shutil.copy(GOLDEN_DIR / "config.json", tmp_path / "config.json")
    state = load_torch_file(GOLDEN_DIR / "model.safetensors")
    del state["encoder.layer.1.mlp.wo.weight"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="mlp.wo.weight"):
        load_jina_bert_model(tmp_path, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"architectures": ["JinaBertForMaskedLM"], "model_type": "bert"}, True),
        ({"auto_map": {"AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel"}}, True),
        ({"model_type": "bert", "position_embedding_type": "alibi"}, True),
        ({"architectures": ["BertModel"], "model_type": "bert", "position_embedding_type": "absolute"}, False),
        ({"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta"}, False),
    ],
)
def test_jina_checkpoints_are_detected_from_config(config, expected):
    assert is_jina_bert_config(config) is expected


def test_load_encoder_picks_the_architecture(tiny_jina_dir, tiny_bert_dir):
    assert isinstance(load_encoder(tiny_jina_dir, device="cpu"), JinaBertEncoder)
    bert = load_encoder(tiny_bert_dir, device="cpu")
    assert isinstance(bert, HFAutoEncoder) and bert.max_length == 128
    assert json.loads((tiny_jina_dir / "config.json").read_text())["max_position_embeddings"] == 8192
    assert load_encoder(tiny_jina_dir, device="cpu").max_length == 8192


def test_revision_changes_with_the_weights(tmp_path, tiny_jina_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_jina_dir, copy)
    before = load_encoder(copy, device="cpu").revision
    state = load_torch_file(copy / "model.safetensors")
    state["embeddings.LayerNorm.bias"] += 1
    from safetensors.torch import save_file

    save_file(state, str(copy / "model.safetensors"))
    assert load_encoder(copy, device="cpu").revision != before


def test_alibi_slopes_follow_the_power_of_two_rule():
    np.testing.assert_allclose(alibi_slopes(8).numpy(), [2.0 ** -(i + 1) for i in range(8)])
    twelve = alibi_slopes(12).numpy()
    np.testing.assert_allclose(twelve[:8], [2.0 ** -(i + 1) for i in range(8)])
    np.testing.assert_allclose(twelve[8:], [2.0 ** -(0.5 + i) for i in range(4)])


def test_alibi_bias_is_symmetric_and_zero_on_the_diagonal():
    bias = alibi_bias(4, 6, torch.device("cpu"), torch.float32)[0]  # (heads, seq, seq)
    assert torch.equal(bias, bias.transpose(1, 2))
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)
    assert bias[0, 0, 5] == pytest.approx(-5 * alibi_slopes(4)[0].item())


def test_query_encoding_is_normalised_mean_pooling(tiny_jina):
    texts = ["she works in berlin", "coral reefs"]
    queries = tiny_jina.encode_queries(texts)
    assert queries.shape == (2, tiny_jina.dim) and queries.dtype == np.float32
    ids = tiny_jina.tokenizer(texts[0])["input_ids"]
    with torch.no_grad():
        mean = tiny_jina.model(torch.tensor([ids]))[0].mean(0).numpy()
    np.testing.assert_allclose(queries[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_default_dtype_is_float32_on_cpu_and_bfloat16_on_cuda():
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cuda")) == torch.float16
