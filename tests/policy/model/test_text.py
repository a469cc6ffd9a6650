import json
import os

import pytest
import torch
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from policy.model.text import CachedText, MiniLMEncoder, UMT5Encoder, minilm_dir


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder(max_tokens=48)


def test_minilm_token_embeddings_zero_padded(minilm):
    emb = minilm.encode(["put the red block on the plate", "open the drawer"])
    assert emb.shape == (2, 48, 384) and emb.dtype == torch.float32
    n_tokens = (emb.abs().sum(-1) > 0).sum(-1)
    assert n_tokens[0] > n_tokens[1] >= 4                  # [CLS] open the drawer [SEP]
    assert (emb[1, n_tokens[1]:] == 0).all()


def test_cached_text_prepends_prefix_and_memoises(minilm):
    calls = []

    class Counting:
        dim, max_tokens = minilm.dim, minilm.max_tokens

        def encode(self, texts):
            calls.append(texts)
            return minilm.encode(texts)

    cache = CachedText(Counting(), prefix="A tabletop. Task: ", capacity=2)
    a = cache("stack the cubes")
    assert cache("stack the cubes") is a and calls == [["A tabletop. Task: stack the cubes"]]
    assert not torch.equal(a, minilm.encode(["stack the cubes"]))
    cache("b"), cache("c")                                   # evicts the oldest
    cache("stack the cubes")
    assert len(calls) == 4


def test_minilm_rejects_tampered_weights(tmp_path):
    src = minilm_dir()
    for name in os.listdir(src):
        if name != "model.safetensors" and (src / name).is_file():
            os.symlink(src / name, tmp_path / name)
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256"):
        MiniLMEncoder(directory=tmp_path)


def test_umt5_from_local_directory(tmp_path):
    cfg = UMT5Config(vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                     relative_attention_num_buckets=8)
    torch.manual_seed(0)
    UMT5EncoderModel(cfg).save_pretrained(tmp_path)
    # any local tokenizer works for the loading path; umt5-xxl ships its own sentencepiece one
    AutoTokenizer.from_pretrained(str(minilm_dir())).save_pretrained(tmp_path)
    enc = UMT5Encoder(tmp_path, max_tokens=16)
    emb = enc.encode(["pick up the cup"])
    assert emb.shape == (1, 16, 32) and enc.dim == 32
    assert (emb[0, -1] == 0).all() and emb[0, 0].abs().sum() > 0
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "umt5"
    with pytest.raises(FileNotFoundError, match="umT5"):
        UMT5Encoder(tmp_path / "missing")
