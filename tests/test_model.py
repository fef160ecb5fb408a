import numpy as np
import pytest
import torch

from nanorec.models.gpt import (
    GPT,
    CompiledLoss,
    Dropout,
    GPTConfig,
    document_causal_mask,
    next_item_loss,
)
from nanorec.packing import pack
from nanorec.params import TrainParams
from nanorec.training import train


def tiny_model(content_dim: int = 0, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        n_items=30,
        block_size=12,
        n_layer=2,
        n_head=2,
        n_embd=16,
        content_dim=content_dim,
    )
    content = torch.randn(31, content_dim) if content_dim else None
    return GPT(config, content).eval()


def packed_example():
    sequences = [np.array([1, 2, 3, 4]), np.array([5, 6, 7]), np.array([8, 9, 10, 11])]
    return sequences, pack(sequences, block_size=12)


def as_tensors(rows):
    return (torch.from_numpy(getattr(rows, n)) for n in ("idx", "pos", "seq_id"))


def test_mask_is_causal_within_sequence():
    mask = document_causal_mask(torch.tensor([[0, 0, 1, 1, -1]]))[0, 0]
    assert mask[1, 0] and mask[1, 1] and not mask[0, 1]
    assert not mask[2, 1]  # second sequence cannot see the first
    assert mask[3, 2]


def test_changing_one_sequence_leaves_others_unchanged():
    model = tiny_model(content_dim=8)
    _, rows = packed_example()
    idx, pos, seq_id = as_tensors(rows)
    logits, _ = model(idx, pos, seq_id)
    changed = idx.clone()
    victim = seq_id == 1
    changed[victim] = torch.randint(1, 31, (int(victim.sum()),))
    logits_changed, _ = model(changed, pos, seq_id)
    others = (seq_id != 1) & (seq_id != -1)
    assert torch.allclose(logits[others], logits_changed[others], atol=1e-5)
    assert not torch.allclose(logits[victim], logits_changed[victim])


def test_packed_row_matches_each_sequence_alone():
    model = tiny_model(content_dim=8)
    sequences, rows = packed_example()
    idx, pos, seq_id = as_tensors(rows)
    packed_logits, _ = model(idx, pos, seq_id)
    for s in range(int(seq_id.max()) + 1):
        where = seq_id[0] == s
        alone_idx = idx[0, where].unsqueeze(0)
        n = alone_idx.size(1)
        alone, _ = model(
            alone_idx, torch.arange(n).unsqueeze(0), torch.zeros(1, n, dtype=torch.long)
        )
        assert torch.allclose(alone[0], packed_logits[0, where], atol=1e-5)


def test_position_ids_change_the_output():
    model = tiny_model()
    idx = torch.tensor([[3, 4, 5]])
    seq = torch.zeros(1, 3, dtype=torch.long)
    a, _ = model(idx, torch.tensor([[0, 1, 2]]), seq)
    b, _ = model(idx, torch.tensor([[1, 2, 3]]), seq)
    assert not torch.allclose(a, b)


def test_loss_ignores_padding_targets():
    model = tiny_model()
    _, rows = packed_example()
    idx, pos, seq_id = as_tensors(rows)
    targets = torch.from_numpy(rows.targets)
    logits, loss = model(idx, pos, seq_id, targets)
    assert logits.shape == (int((targets != -1).sum()), 31)
    assert torch.isfinite(loss)


def test_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    # A planted pattern: item i is always followed by item i + 1.
    sequences = []
    for _ in range(300):
        start = int(rng.integers(1, 20))
        sequences.append(np.arange(start, start + int(rng.integers(3, 10))))
    rows = pack(sequences, block_size=12)
    model = tiny_model()
    params = TrainParams(
        max_steps=60,
        batch_size=16,
        lr=1e-2,
        dropout=0.0,
        dtype="float32",
        eval_interval=0,
    )
    result = train(model, rows, params, seed=0, progress=False)
    first = float(np.mean(result.losses[:5]))
    last = float(np.mean(result.losses[-5:]))
    assert last < first - 1.0
    # The learned model continues the pattern.
    logits, _ = model.eval()(
        torch.tensor([[4, 5, 6]]), torch.tensor([[0, 1, 2]]), torch.zeros(1, 3).long()
    )
    assert int(logits[0, -1].argmax()) == 7


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_compiled_loss_matches_eager(dtype, label_smoothing):
    compiled = CompiledLoss()
    generator = torch.Generator().manual_seed(0)
    # Two batch sizes: the compiled loss must follow the changing number of targets.
    for n in (37, 53):
        logits = torch.randn(n, 50, generator=generator).to(dtype)
        targets = torch.randint(1, 50, (n,), generator=generator)
        expected_input = logits.clone().requires_grad_()
        expected = next_item_loss(expected_input, targets, label_smoothing)
        expected.backward()
        got_input = logits.clone().requires_grad_()
        got = compiled(got_input, targets, label_smoothing)
        got.backward()
        assert compiled._compiled is not None, "compilation failed on this machine"
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_input.grad, expected_input.grad)


def test_compiled_loss_without_compiler_falls_back(caplog):
    import torch._inductor.config as inductor_config

    logits = torch.randn(9, 20, requires_grad=True)
    targets = torch.arange(1, 10)
    torch._dynamo.reset()
    with inductor_config.patch(
        {"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}
    ):
        loss = CompiledLoss()(logits, targets, 0.0)
    torch._dynamo.reset()
    assert "using the eager loss" in caplog.text
    torch.testing.assert_close(loss, next_item_loss(logits, targets))


def test_dropout_keep_share_and_scale():
    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.ones(200_000, requires_grad=True)
    y = layer.train()(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert torch.equal(layer.eval()(x), x)
