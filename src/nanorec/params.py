"""Typed views of the sections of `params.yaml`, with range checks.

Each stage loads its own section into a frozen dataclass. Unknown keys and values out
of range raise `ParamError` naming the key, so a typo in an experiment override fails
before any work is done.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nanorec.errors import NanorecError
from nanorec.io import relative_to_cwd


class ParamError(NanorecError, ValueError):
    """A value in params.yaml is missing, unknown or out of range."""


@dataclass(frozen=True)
class IngestParams:
    format: str = "synthetic"
    path: str = ""
    synthetic_users: int = 3000
    synthetic_items: int = 600
    synthetic_shape: str = "small"
    synthetic_images: bool = False
    dedupe_pairs: bool = False
    max_history: int = 0
    rating_min: float = 1.0
    rating_max: float = 5.0

    def validate(self) -> None:
        formats = ("synthetic", "challenge", "amazon2023", "recbole", "sequences")
        _check_choice("ingest.format", self.format, formats)
        if self.format != "synthetic" and not self.path:
            raise ParamError(
                f"ingest.path is empty but ingest.format is {self.format!r}: set it "
                "to the input file or folder, e.g. -S ingest.path=/data/beauty"
            )
        _check_positive("ingest.synthetic_users", self.synthetic_users)
        _check_positive("ingest.synthetic_items", self.synthetic_items)
        _check_choice(
            "ingest.synthetic_shape", self.synthetic_shape, ("small", "challenge")
        )
        _check_non_negative("ingest.max_history", self.max_history)
        if self.rating_min > self.rating_max:
            raise ParamError(
                f"ingest.rating_min={self.rating_min} is above "
                f"ingest.rating_max={self.rating_max}"
            )
        if self.synthetic_images and self.format != "synthetic":
            raise ParamError(
                "ingest.synthetic_images=true needs ingest.format=synthetic: real "
                "images go in the folder set by siglip_embed.images"
            )


@dataclass(frozen=True)
class SplitParams:
    train_on_validation: bool = False

    def validate(self) -> None:
        pass


@dataclass(frozen=True)
class EmbedParams:
    encoder: str = "minilm"
    model: str = ""
    revision: str = ""
    inputs: str = "image_or_text"
    images: str = "inputs/images"
    average_images: bool = False
    batch_size: int = 128
    device: str = "cpu"

    def validate(self) -> None:
        _check_choice(
            "siglip_embed.encoder", self.encoder, ("minilm", "siglip", "none")
        )
        _check_choice(
            "siglip_embed.inputs", self.inputs, ("image", "text", "image_or_text")
        )
        if self.encoder == "siglip" and not self.model:
            raise ParamError(
                "siglip_embed.model is empty but siglip_embed.encoder is 'siglip': "
                "set it to a local model folder or a hub id such as "
                "google/siglip-base-patch16-224 (a hub id needs network or the cache)"
            )
        if self.encoder == "minilm" and self.inputs == "image":
            raise ParamError(
                "siglip_embed.inputs='image' needs siglip_embed.encoder=siglip: "
                "minilm encodes text only"
            )
        _check_positive("siglip_embed.batch_size", self.batch_size)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ParamError(
                f"siglip_embed.device={self.device!r} is not one of auto, cpu, mps, "
                "cuda or cuda:N"
            )


@dataclass(frozen=True)
class PackParams:
    block_size: int = 32

    def validate(self) -> None:
        _check_positive("pack.block_size", self.block_size)


MODEL_FAMILIES = ("transformer", "svd", "siglip_knn", "lightgcn")


@dataclass(frozen=True)
class TrainParams:
    model: str = "transformer"
    siglip: bool = True
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.2
    batch_size: int = 64
    max_steps: int = 300
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 30
    decay: bool = False
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    dtype: str = "bfloat16"
    attention: str = "sdpa"
    compile: bool = False
    compile_loss: bool = True
    fused_adamw: bool = True
    device: str = "cpu"
    eval_interval: int = 100
    eval_users: int = 2000
    keep_best: bool = True
    checkpoint_interval: int = 100
    svd_factors: int = 64
    knn_last_n: int = 1
    knn_neighbours: int = 200
    lightgcn_dim: int = 64
    lightgcn_layers: int = 3
    lightgcn_steps: int = 400
    lightgcn_batch_size: int = 8192
    lightgcn_lr: float = 2e-2
    lightgcn_lambda_reg: float = 1e-4

    def validate(self) -> None:
        _check_choice("train.model", self.model, MODEL_FAMILIES)
        for name in (
            "svd_factors",
            "knn_last_n",
            "knn_neighbours",
            "lightgcn_dim",
            "lightgcn_layers",
            "lightgcn_steps",
            "lightgcn_batch_size",
            "lightgcn_lr",
        ):
            _check_positive(f"train.{name}", getattr(self, name))
        _check_non_negative("train.lightgcn_lambda_reg", self.lightgcn_lambda_reg)
        _check_choice("train.dtype", self.dtype, ("bfloat16", "float32"))
        _check_choice("train.attention", self.attention, ("sdpa", "flex"))
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ParamError(
                f"train.device={self.device!r} is not one of auto, cpu, cuda or cuda:N"
            )
        if self.attention == "flex" and self.device == "cpu":
            raise ParamError(
                "train.attention=flex cannot train on CPU because flex_attention has "
                "no CPU backward pass: set train.attention=sdpa, or train.device to "
                "cuda or auto on a CUDA machine"
            )
        for name in ("n_layer", "n_head", "n_embd", "batch_size", "max_steps"):
            _check_positive(f"train.{name}", getattr(self, name))
        for name in (
            "warmup_steps",
            "eval_interval",
            "eval_users",
            "checkpoint_interval",
        ):
            _check_non_negative(f"train.{name}", getattr(self, name))
        if self.n_embd % self.n_head:
            raise ParamError(
                f"train.n_embd={self.n_embd} is not divisible by "
                f"train.n_head={self.n_head}: pick n_head among the divisors of n_embd"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ParamError(f"train.dropout={self.dropout} must be in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ParamError(
                f"train.label_smoothing={self.label_smoothing} must be in [0, 1)"
            )
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ParamError(
                f"train.lr={self.lr} and train.min_lr={self.min_lr} must satisfy "
                "0 <= min_lr <= lr and lr > 0"
            )
        _check_non_negative("train.weight_decay", self.weight_decay)
        _check_non_negative("train.grad_clip", self.grad_clip)


@dataclass(frozen=True)
class PredictParams:
    strategy: str = "oneshot"
    exclude_seen: bool = True
    k: int = 10
    batch_size: int = 1024
    blend_weight: float = 0.0
    blend_window: int = 3
    blend_last_n: int = 3

    def validate(self) -> None:
        _check_choice("predict.strategy", self.strategy, ("oneshot", "generative"))
        _check_positive("predict.k", self.k)
        _check_positive("predict.batch_size", self.batch_size)
        if not 0.0 <= self.blend_weight <= 1.0:
            raise ParamError(
                f"predict.blend_weight={self.blend_weight} must be in [0, 1]"
            )
        _check_positive("predict.blend_window", self.blend_window)
        _check_positive("predict.blend_last_n", self.blend_last_n)


_SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "split": SplitParams,
    "siglip_embed": EmbedParams,
    "pack": PackParams,
    "train": TrainParams,
    "predict": PredictParams,
}

T = TypeVar("T")


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a params file into a dict, raising ParamError if it is not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as err:
        raise ParamError(
            f"params file {path} does not exist{relative_to_cwd(path)}: run from "
            "the project folder or pass --params PATH"
        ) from err
    except yaml.YAMLError as err:
        raise ParamError(f"params file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ParamError(f"params file {path} must hold a mapping of sections")
    return data


def load_section(path: Path, section: str) -> Any:
    """Load one section of a params file into its dataclass and validate it.

    Args:
        path: the params.yaml file.
        section: a top-level key, e.g. "train".

    Returns:
        The frozen dataclass for that section; keys absent from the file keep
        their defaults.

    Raises:
        ParamError: the file is missing or invalid. The message names the file.
    """
    cls = _SECTIONS[section]
    raw = load_yaml(path).get(section) or {}
    try:
        return from_dict(cls, raw, section)
    except ParamError as err:
        raise ParamError(f"params file {path}: {err}") from err


def load_seed(path: Path) -> int:
    """Return the top-level `seed` of a params file (default 1337)."""
    seed = load_yaml(path).get("seed", 1337)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParamError(f"params file {path}: seed={seed!r} must be an integer")
    return seed


def validate_file(path: Path) -> None:
    """Validate the seed and every section of a params file.

    The first stage calls this, so that a typo in a later stage's section fails
    before any stage has done work.

    Raises:
        ParamError: at the first invalid section, naming the file and the key.
    """
    load_seed(path)
    for section in _SECTIONS:
        load_section(path, section)


def from_dict(cls: type[T], raw: dict[str, Any], section: str) -> T:
    """Build a params dataclass from a dict, checking names and types."""
    if not isinstance(raw, dict):
        raise ParamError(f"params section '{section}' must be a mapping")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ParamError(
            f"unknown key(s) {unknown} in params section '{section}'; "
            f"known keys: {sorted(known)}"
        )
    values = {}
    for name, value in raw.items():
        default = known[name].default
        values[name] = _coerce(f"{section}.{name}", value, type(default))
    params = cls(**values)
    params.validate()  # type: ignore[attr-defined]
    return params


def as_dict(params: Any) -> dict[str, Any]:
    """Return a params dataclass as a plain dict (for JSON checkpoints)."""
    return dataclasses.asdict(params)


def _coerce(key: str, value: Any, kind: type) -> Any:
    # YAML reads 3e-3 as a string and 1 as an int where a float is meant.
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ParamError(f"{key}={value!r} must be true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamError(f"{key}={value!r} must be an integer")
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError) as err:
            raise ParamError(f"{key}={value!r} must be a number") from err
    if kind is str:
        if value is None:
            return ""
        return str(value)
    return value


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamError(f"{key}={value!r} is not one of {list(choices)}")


def _check_positive(key: str, value: float) -> None:
    if value <= 0:
        raise ParamError(f"{key}={value} must be greater than 0")


def _check_non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ParamError(f"{key}={value} must not be negative")
