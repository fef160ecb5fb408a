"""Self-describing model folders: weights as safetensors beside a JSON config.

Nothing is ever unpickled: the JSON says which model family to rebuild and with
which sizes, and the tensors come from safetensors.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nanorec.errors import InputError
from nanorec.io import atomic_path, read_json, write_json
from nanorec.models.gpt import GPT, GPTConfig

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def items_hash(item_ids: np.ndarray) -> str:
    """Short hash of the catalog's item ids in item_idx order."""
    data = np.ascontiguousarray(np.asarray(item_ids, dtype=np.int64)).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def save(
    folder: Path, family: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Write tensors and their config (family + meta) into folder, atomically each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
    write_json({"model": family, **meta}, folder / CONFIG)
    logger.info("saved %s model to %s", family, folder)


def load_config(folder: Path) -> dict[str, Any]:
    """Read a model folder's config.json."""
    path = Path(folder) / CONFIG
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the train stage first (dvc repro train)"
        )
    return read_json(path)


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Read a model folder's safetensors weights.

    Raises:
        InputError: the weights file is missing or not valid safetensors.
    """
    path = Path(folder) / WEIGHTS
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(
            f"cannot read the model weights {path}: {reason}. Rerun the train "
            "stage (dvc repro train) to rewrite them."
        ) from err


def load_transformer(folder: Path) -> GPT:
    """Rebuild a GPT from a model folder, in eval mode."""
    config = load_config(folder)
    if config.get("model") != "transformer":
        raise ValueError(f"{folder} holds a {config.get('model')!r} model")
    model = GPT(GPTConfig(**config["gpt"]))
    model.load_state_dict(load_tensors(folder))
    return model.eval()
