"""The sdpa and flex attention backends against a plain masked-softmax reference."""

import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from nanorec.models.gpt import (
    GPT,
    CausalSelfAttention,
    GPTConfig,
    document_block_mask,
    document_causal_mask,
)
from nanorec.packing import pack
from nanorec.params import ParamError, TrainParams, from_dict
from nanorec.training import train

BLOCK = 16
# flex_attention warns when it runs eagerly (unfused); these tests want eager.
pytestmark = pytest.mark.filterwarnings(
    "ignore:flex_attention called without torch.compile"
)


def random_packed_batch(seed: int):
    """Packed rows of random histories (2 to 20 items), padding rows included."""
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(1, 50, size=int(rng.integers(2, 21))) for _ in range(30)]
    return pack(sequences, BLOCK)


def reference_attention(layer: CausalSelfAttention, x, seq_id):
    """Softmax(q k^T / sqrt(d)) v with -inf outside the document-causal mask."""
    b, t, c = x.shape
    head_dim = c // layer.n_head
    q, k, v = layer.c_attn(x).split(c, dim=2)
    q, k, v = (z.view(b, t, layer.n_head, head_dim).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    allowed = (seq_id[:, :, None] == seq_id[:, None, :]) & (
        torch.arange(t)[None, :, None] >= torch.arange(t)[None, None, :]
    )
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    y = y.transpose(1, 2).reshape(b, t, c)
    return layer.c_proj(y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backends_match_reference_layer(seed):
    rows = random_packed_batch(seed)
    seq_id = torch.from_numpy(rows.seq_id)
    torch.manual_seed(seed)
    config = GPTConfig(n_items=50, block_size=BLOCK, n_head=4, n_embd=32)
    layer = CausalSelfAttention(config).eval()
    x = torch.randn(seq_id.shape[0], BLOCK, 32)
    with torch.no_grad():
        expected = reference_attention(layer, x, seq_id)
        sdpa = layer(x, document_causal_mask(seq_id))
        flex = layer(x, document_block_mask(seq_id))
    assert (sdpa - expected).abs().max() < 1e-5
    assert (flex - expected).abs().max() < 1e-5


@pytest.mark.parametrize("seed", [0, 1])
def test_flex_model_matches_sdpa_model(seed):
    rows = random_packed_batch(seed)
    idx, pos, seq_id = (
        torch.from_numpy(getattr(rows, n)) for n in ("idx", "pos", "seq_id")
    )
    torch.manual_seed(seed)
    config = GPTConfig(n_items=50, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16)
    sdpa_model = GPT(config).eval()
    flex_model = GPT(replace(config, attention="flex")).eval()
    flex_model.load_state_dict(sdpa_model.state_dict())
    with torch.no_grad():
        expected, _ = sdpa_model(idx, pos, seq_id)
        actual, _ = flex_model(idx, pos, seq_id)
    real = seq_id != -1
    assert (actual[real] - expected[real]).abs().max() < 1e-4


def test_config_without_attention_loads_as_sdpa():
    saved = asdict(GPTConfig(n_items=10))
    del saved["attention"]
    assert GPTConfig(**saved).attention == "sdpa"


def test_unknown_attention_is_rejected():
    with pytest.raises(ValueError, match="attention='xformers' is not one of"):
        GPTConfig(n_items=10, attention="xformers")


def test_flex_training_on_cpu_fails_fast():
    with pytest.raises(ParamError, match="train.attention=flex cannot train on CPU"):
        from_dict(TrainParams, {"attention": "flex", "device": "cpu"}, "train")

    # The same check guards the loop when train.device=auto picks the CPU.
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, where flex trains")
    model = GPT(GPTConfig(n_items=50, block_size=BLOCK, attention="flex"))
    params = TrainParams(attention="flex", device="auto", max_steps=1)
    with pytest.raises(ParamError, match="train.attention=flex"):
        train(model, random_packed_batch(0), params, seed=0, progress=False)
