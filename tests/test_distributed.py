"""Data-parallel training: sharding, and two torchrun processes against one.

Run as a script (`torchrun ... tests/test_distributed.py OUT`), this file is the
worker: it trains the small model below and writes each rank's weights and
losses into OUT.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import edit_params, run
from safetensors.torch import load_file, save_file

from nanorec import distributed
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.packing import pack
from nanorec.params import ParamError, TrainParams
from nanorec.training import train

N_STEPS = 6


def small_setup():
    """Rows, a model and params; identical in every process that calls it."""
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 40, size=rng.integers(2, 14)) for _ in range(150)]
    rows = pack(sequences, block_size=8)
    torch.manual_seed(0)
    config = GPTConfig(n_items=40, block_size=8, n_layer=1, n_head=2, n_embd=16)
    params = TrainParams(
        max_steps=N_STEPS,
        # 13 rows per global batch: the ranks get 7 and 6 rows, with unequal
        # target counts, so the loss weighting matters.
        batch_size=13,
        dropout=0.0,
        dtype="float32",
        eval_interval=0,
        checkpoint_interval=0,
        lr=1e-2,
    )
    return rows, GPT(config), params


def worker(out: Path) -> None:
    rows, model, params = small_setup()
    result = train(model, rows, params, seed=0, progress=False)
    rank = distributed.from_env().rank
    save_file(model.state_dict(), str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps(result.losses))


def test_shards_cover_the_batch_once():
    batch = torch.arange(13)
    shards = [
        distributed.shard(batch, distributed.Context(rank, rank, 3))
        for rank in range(3)
    ]
    assert [len(s) for s in shards] == [5, 4, 4]
    assert sorted(torch.cat(shards).tolist()) == list(range(13))


def test_short_batch_leaves_a_rank_empty():
    shard = distributed.shard(torch.arange(2), distributed.Context(2, 2, 3))
    assert len(shard) == 0


def test_context_from_torchrun_environment():
    context = distributed.from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert context == distributed.Context(1, 1, 2)
    assert context.enabled
    assert not context.is_main
    single = distributed.from_env({})
    assert not single.enabled
    assert single.is_main


def test_rank_outside_world_is_rejected():
    with pytest.raises(ValueError, match="RANK=2 must be in"):
        distributed.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_cuda_device_without_cuda_is_rejected():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParamError, match="train.device='cuda' but CUDA is not"):
        distributed.resolve_device("cuda", distributed.Context())
    assert distributed.resolve_device("auto", distributed.Context()).type == "cpu"


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        __file__,
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]

    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
    losses0 = json.loads((tmp_path / "rank0.json").read_text())
    losses1 = json.loads((tmp_path / "rank1.json").read_text())
    assert losses0 == losses1

    rows, model, params = small_setup()
    single = train(model, rows, params, seed=0, progress=False)
    assert len(losses0) == N_STEPS
    assert np.allclose(losses0, single.losses, rtol=1e-5, atol=1e-6)
    for name, value in model.state_dict().items():
        assert torch.allclose(value, rank0[name], rtol=1e-4, atol=1e-5), name


@pytest.mark.slow
def test_train_stage_under_torchrun_writes_outputs_once(project):
    edit_params(
        project,
        siglip_embed={"encoder": "none"},
        train={"siglip": False, "max_steps": 12, "eval_interval": 6},
    )
    run(["dvc", "repro", "pack", "siglip_embed"], project)
    outputs = {
        "--out": "out/model",
        "--metrics": "out/train.json",
        "--live-dir": "out/live",
        "--checkpoints": "out/checkpoints",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "stages/train.py",
        *("--ingested", "data/ingest", "--packed", "data/pack/train.parquet"),
        *("--vectors", "data/embed/item_vectors.parquet"),
        *(item for pair in outputs.items() for item in pair),
    ]
    # A rank left waiting on a peer that has exited would hang here otherwise.
    run(command, project, env={"OMP_NUM_THREADS": "1"}, timeout=900)
    summary = json.loads((project / "out/train.json").read_text())
    assert summary["step"] in (6, 12)
    assert (project / "out/model/model.safetensors").exists()
    steps = (project / "out/live/plots/metrics/train/loss.tsv").read_text()
    # One header and one line per step: rank 1 logged nothing.
    assert len(steps.strip().splitlines()) == 13


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
