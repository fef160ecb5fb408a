"""Training checkpoints that let a killed run continue where it stopped.

A checkpoint is a folder `step-NNNNNNN/` with the weights (current and best) and the
torch RNG state in safetensors, the optimizer state in a torch file that is read with
`weights_only=True`, and everything else (step, losses, Python and NumPy RNG states)
in JSON. `latest.json` names the newest complete folder and is replaced atomically
after the folder is fully written, so a kill at any moment leaves either the old or
the new checkpoint, never a half-written one. A fingerprint of the params and the
training data guards against resuming a different run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nanorec.io import read_json, write_json

logger = logging.getLogger(__name__)

LATEST = "latest.json"


@dataclass
class Progress:
    """Counters of a training run that a checkpoint carries."""

    step: int = 0  # optimizer steps done
    best: float = -1.0  # best validation MAP@10 so far
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    target_tokens: int = 0
    seconds: float = 0.0  # training wall time, summed over resumed runs


@dataclass
class Restored:
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    progress: Progress


def fingerprint(*parts: Any) -> str:
    """Hash of JSON-able values and NumPy arrays that identify a training run."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def save(
    folder: Path,
    run_id: str,
    model: torch.nn.Module,
    best_model: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    progress: Progress,
) -> Path:
    """Write a checkpoint for progress.step and point latest.json at it.

    Older checkpoint folders are removed once the new one is in place.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{progress.step:07d}"
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_model.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(
        {k: v.detach().contiguous() for k, v in tensors.items()},
        tmp / "weights.safetensors",
    )
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "run_id": run_id,
        "progress": asdict(progress),
        "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    (tmp / "state.json").write_text(json.dumps(state))

    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json({"run_id": run_id, "checkpoint": name}, folder / LATEST)
    for old in folder.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint at step %d written to %s", progress.step, final)
    return final


def load(folder: Path, run_id: str) -> Restored | None:
    """Return the latest checkpoint of run_id, or None when there is none.

    A checkpoint of another run (different params or data) is ignored with a log
    message, never resumed.
    """
    latest = Path(folder) / LATEST
    if not latest.exists():
        return None
    pointer = read_json(latest)
    if pointer.get("run_id") != run_id:
        logger.info(
            "ignoring checkpoint in %s: it belongs to another run (params or data "
            "changed)",
            folder,
        )
        return None
    path = Path(folder) / pointer["checkpoint"]
    tensors = load_file(str(path / "weights.safetensors"))
    optimizer = torch.load(path / "optimizer.pt", weights_only=True)
    state = json.loads((path / "state.json").read_text())

    torch.set_rng_state(tensors.pop("rng.torch"))
    kind, keys, *rest = state["rng_numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["rng_python"]
    random.setstate((version, tuple(internal), gauss))

    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    progress = Progress(**state["progress"])
    logger.info("resuming from %s (step %d)", path, progress.step)
    return Restored(model, best, optimizer, progress)


def clear(folder: Path) -> None:
    """Remove the checkpoints of a finished run, keeping the (empty) folder.

    Checkpoints exist to continue an interrupted run; once the model is saved, a
    forced rerun should train again from scratch rather than resume at the end.
    """
    folder = Path(folder)
    (folder / LATEST).unlink(missing_ok=True)
    for old in folder.glob("step-*"):
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
