"""Determinism, kill-and-resume, pickle-free artifacts and clear output errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import edit_params, run
from safetensors.torch import load_file

from nanorec import resume
from nanorec.errors import OutputError
from nanorec.io import write_json
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.packing import pack
from nanorec.params import TrainParams
from nanorec.training import Checkpointing, DataOrder, train

TRAIN_STAGE = [
    sys.executable,
    "stages/train.py",
    "--ingested",
    "data/ingest",
    "--packed",
    "data/pack/train.parquet",
    "--vectors",
    "data/embed/item_vectors.parquet",
]


class Interrupt(Exception):
    """Raised from the metric logger to stop training mid-run."""


def small_run(tmp_path: Path, max_steps: int, interval: int, stop_at: int = -1):
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 30, size=rng.integers(2, 12)) for _ in range(120)]
    rows = pack(sequences, block_size=8)
    torch.manual_seed(0)
    config = GPTConfig(
        n_items=30, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1
    )
    model = GPT(config)
    params = TrainParams(
        max_steps=max_steps,
        batch_size=8,
        dtype="float32",
        eval_interval=0,
        decay=True,
        warmup_steps=3,
    )
    saving = Checkpointing(tmp_path / "ckpt", interval, run_id="run-a")

    def log(name: str, value: float, step: int) -> None:
        if step == stop_at:
            raise Interrupt

    result = train(model, rows, params, 0, None, log, False, saving)
    return model, result


def test_data_order_is_a_function_of_step():
    a, b = DataOrder(50, 8, seed=3), DataOrder(50, 8, seed=3)
    steps = [0, 1, 6, 7, 13, 2]
    first = [a.batch(s).tolist() for s in steps]
    second = [b.batch(s).tolist() for s in reversed(steps)][::-1]
    assert first == second
    epoch = torch.cat([a.batch(s) for s in range(a.steps_per_epoch)])
    assert sorted(epoch.tolist()) == list(range(50))


def test_resumed_training_matches_uninterrupted(tmp_path):
    full_model, full = small_run(tmp_path / "full", max_steps=30, interval=0)
    with pytest.raises(Interrupt):
        small_run(tmp_path / "part", max_steps=30, interval=10, stop_at=23)
    pointer = json.loads((tmp_path / "part/ckpt/latest.json").read_text())
    assert pointer["checkpoint"] == "step-0000020"

    resumed_model, resumed = small_run(tmp_path / "part", max_steps=30, interval=10)
    assert resumed.resumed_from == 20
    for key, value in full_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert resumed.losses == full.losses


def test_two_runs_give_identical_weights(tmp_path):
    a, result_a = small_run(tmp_path / "a", max_steps=15, interval=0)
    b, result_b = small_run(tmp_path / "b", max_steps=15, interval=0)
    assert result_a.losses == result_b.losses
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    small_run(tmp_path, max_steps=10, interval=5)
    assert resume.load(tmp_path / "ckpt", run_id="other-run") is None
    assert resume.load(tmp_path / "ckpt", run_id="run-a").progress.step == 10


def test_checkpoint_files_open_without_pickle(tmp_path):
    small_run(tmp_path, max_steps=10, interval=5)
    folder = tmp_path / "ckpt" / "step-0000010"
    assert load_file(str(folder / "weights.safetensors"))
    state = torch.load(folder / "optimizer.pt", weights_only=True)
    assert "state" in state
    json.loads((folder / "state.json").read_text())


def wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / "latest.json").exists():
            return json.loads((folder / "latest.json").read_text())
        if process.poll() is not None:
            raise AssertionError("training finished before it could be killed")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(project):
    edit_params(
        project,
        siglip_embed={"encoder": "none"},
        train={
            "siglip": False,
            "max_steps": 300,
            "eval_interval": 100,
            "checkpoint_interval": 25,
            "decay": True,
        },
    )
    run(["dvc", "repro", "pack", "siglip_embed"], project)

    def train_into(name: str) -> subprocess.Popen:
        args = TRAIN_STAGE + [
            "--out",
            f"out/{name}/model",
            "--metrics",
            f"out/{name}/train.json",
            "--live-dir",
            f"out/{name}/live",
            "--checkpoints",
            f"out/{name}/ckpt",
        ]
        return subprocess.Popen(
            args, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    assert train_into("whole").wait() == 0

    victim = train_into("killed")
    pointer = wait_for_checkpoint(project / "out/killed/ckpt", victim, timeout=300)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (project / "out/killed/model/model.safetensors").exists()
    assert pointer["checkpoint"] != "step-0000300"

    assert train_into("killed").wait() == 0
    whole = json.loads((project / "out/whole/train.json").read_text())
    resumed = json.loads((project / "out/killed/train.json").read_text())
    assert resumed["resumed_from_step"] > 0
    for key in ("val_map@10", "val_hr@10", "val_ndcg@10", "final_loss", "step"):
        assert resumed[key] == whole[key], key
    whole_bytes = (project / "out/whole/model/model.safetensors").read_bytes()
    resumed_bytes = (project / "out/killed/model/model.safetensors").read_bytes()
    assert whole_bytes == resumed_bytes


@pytest.mark.slow
def test_two_pipeline_runs_give_identical_checkpoint_bytes(project, tmp_path):
    edit_params(project, siglip_embed={"encoder": "none"}, train={"siglip": False})
    run(["dvc", "repro"], project)
    first = {
        name: (project / "data/model" / name).read_bytes()
        for name in ("model.safetensors", "config.json")
    }
    metrics = (project / "metrics/predict.json").read_text()
    run(["dvc", "repro", "--force", "train", "predict"], project)
    for name, content in first.items():
        assert (project / "data/model" / name).read_bytes() == content, name
    after = json.loads((project / "metrics/predict.json").read_text())
    before = json.loads(metrics)
    for key in ("map@10", "hr@10", "ndcg@10"):
        assert after[key] == before[key]


def small_tmpfs(folder: Path) -> None:
    folder.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
    )
    if made.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")


def test_read_only_folder_gives_clear_error(tmp_path):
    mount = tmp_path / "locked"
    small_tmpfs(mount)
    try:
        write_json({"a": 1}, mount / "kept.json")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(OutputError, match="cannot write .*kept.json"):
            write_json({"a": 2}, mount / "kept.json")
        assert json.loads((mount / "kept.json").read_text()) == {"a": 1}
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_gives_clear_error_and_keeps_old_file(tmp_path):
    mount = tmp_path / "tiny"
    small_tmpfs(mount)
    try:
        write_json({"a": 1}, mount / "metrics.json")
        with pytest.raises(OutputError, match="No space left on device"):
            write_json({"blob": "x" * 200_000}, mount / "metrics.json")
        assert json.loads((mount / "metrics.json").read_text()) == {"a": 1}
        assert sorted(p.name for p in mount.iterdir()) == ["metrics.json"]
    finally:
        subprocess.run(["umount", str(mount)], check=False)
