"""Helpers of the speed benchmarks: machine facts, model and data set-up.

Every result row carries the date, the machine and the 1-minute load average
before and after the timed work, because timings on a shared machine are only
comparable with the load beside them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from nanorec import data, embed, packing
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.params import TrainParams

# Model sizes compared in the benchmarks: the original implementation's and the
# project default of params.yaml.
SIZES = {
    "original": {"n_layer": 6, "n_head": 6, "n_embd": 192},
    "default": {"n_layer": 2, "n_head": 2, "n_embd": 64},
}


def machine() -> dict:
    """CPU model, core count, torch version and the date, for a result row."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far; Linux reports KiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def append_json(row: dict, path: Path) -> None:
    """Append one result as a JSON line and echo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def padded_rows(sequences: list[np.ndarray], block_size: int) -> packing.PackedRows:
    """Lay out each window in a row of its own, padded to block_size."""
    pieces = [w for s in sequences for w in packing.windows(s, block_size)]
    shape = (len(pieces), block_size)
    idx = np.zeros(shape, dtype=np.int64)
    targets = np.full(shape, packing.PAD_TARGET, dtype=np.int64)
    pos = np.zeros(shape, dtype=np.int64)
    seq_id = np.full(shape, packing.PAD_SEQ, dtype=np.int64)
    for row, piece in enumerate(pieces):
        n = len(piece) - 1
        idx[row, :n] = piece[:-1]
        targets[row, :n] = piece[1:]
        pos[row, :n] = np.arange(n)
        seq_id[row, :n] = 0
    return packing.PackedRows(idx, targets, pos, seq_id)


def build_model(
    n_items: int,
    size: str,
    block_size: int,
    content: torch.Tensor | None,
    dropout: float = 0.2,
    attention: str = "sdpa",
) -> GPT:
    """Build a GPT of one of SIZES, seeded so that runs compare."""
    torch.manual_seed(0)
    config = GPTConfig(
        n_items=n_items,
        block_size=block_size,
        dropout=dropout,
        content_dim=0 if content is None else content.shape[1],
        attention=attention,
        **SIZES[size],
    )
    return GPT(config, content)


def train_params(size: str, **overrides) -> TrainParams:
    """Train params of a size with evaluation and checkpoints turned off."""
    base = TrainParams(eval_interval=0, checkpoint_interval=0, **SIZES[size])
    return replace(base, **overrides)


def read_content(vectors: Path | None, n_items: int) -> torch.Tensor | None:
    """Item content vectors from the embed stage's Parquet, or None."""
    if vectors is None:
        return None
    return torch.from_numpy(embed.read_vectors(pq.read_table(vectors), n_items))


def training_sequences(ingested: Path) -> tuple[data.Artifacts, list[np.ndarray]]:
    """Ingest artifacts and the training histories that the pack stage packs."""
    artifacts = data.load(ingested)
    return artifacts, data.training_sequences(artifacts, train_on_validation=False)
