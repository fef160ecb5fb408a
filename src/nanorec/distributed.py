"""Data-parallel training across the processes that torchrun starts.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in each process it starts. Every rank
draws the same global batch from `training.DataOrder` and keeps every
world_size-th row of it, DistributedDataParallel averages the gradients, and rank
0 alone evaluates, logs, checkpoints and writes outputs. The loss of each rank is
weighted by its share of the global batch's targets, so the averaged gradient is
the gradient of the mean loss over the whole global batch, as in one process.

Launch, for example, on one machine with two processes:

    torchrun --standalone --nproc_per_node=2 stages/train.py ...
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nanorec.params import ParamError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """This process's place among the training processes."""

    rank: int = 0  # global rank, 0..world_size-1
    local_rank: int = 0  # rank on this machine; picks the GPU
    world_size: int = 1  # number of processes; 1 without torchrun

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that evaluates, logs and writes outputs."""
        return self.rank == 0


def from_env(environ: Mapping[str, str] | None = None) -> Context:
    """Read the rank and world size that torchrun sets.

    Args:
        environ: the environment; os.environ when None.

    Returns:
        The Context; rank 0 of 1 when the variables are absent.

    Raises:
        ValueError: a variable is not an integer or the ranks are out of range.
    """
    env = os.environ if environ is None else environ
    values = {}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        text = env.get(name, "1" if name == "WORLD_SIZE" else "0")
        if not text.strip().isdigit():
            raise ValueError(f"environment variable {name}={text!r} is not an integer")
        values[name] = int(text)
    context = Context(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"])
    if context.world_size < 1 or not 0 <= context.rank < context.world_size:
        raise ValueError(
            f"RANK={context.rank} must be in [0, WORLD_SIZE={context.world_size}): "
            "start the processes with torchrun"
        )
    return context


def resolve_device(requested: str, context: Context) -> torch.device:
    """Pick the device of this process for the train.device setting.

    Args:
        requested: "auto", "cpu", "cuda" or "cuda:N".
        context: this process's rank; with several CUDA processes each takes the
            GPU of its local rank.

    Returns:
        The torch device.

    Raises:
        ParamError: CUDA was requested but is not available, or the value is
            invalid.
    """
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", requested):
        raise ParamError(
            f"train.device={requested!r} is not one of auto, cpu, cuda or cuda:N"
        )
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ParamError(
            f"train.device={requested!r} but CUDA is not available here: "
            "set train.device=cpu or auto"
        )
    if context.enabled:
        return torch.device("cuda", context.local_rank)
    return torch.device(requested)


def start(context: Context, device: torch.device) -> bool:
    """Join the process group: nccl for CUDA, gloo for CPU.

    Returns:
        True when this call created the group (the caller then calls `stop`);
        False for a single process or a group that already exists.
    """
    if not context.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    logger.info(
        "rank %d of %d joined the %s process group",
        context.rank,
        context.world_size,
        backend,
    )
    return True


def stop(created: bool) -> None:
    """Leave the process group if `start` created it, once every rank is done."""
    if created and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(batch: torch.Tensor, context: Context) -> torch.Tensor:
    """This rank's rows of a global batch: every world_size-th row from its rank.

    Args:
        batch: (n,) row indices of the global batch.
        context: this process's rank.

    Returns:
        (m,) row indices, m = ceil((n - rank) / world_size); empty when the
        global batch has fewer rows than ranks.
    """
    return batch[context.rank :: context.world_size]


def all_reduce_sum(value: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum a tensor over all ranks (a no-op for a single process)."""
    if not context.enabled:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def barrier(context: Context) -> None:
    """Wait until every rank reaches this point (a no-op for a single process)."""
    if context.enabled:
        dist.barrier()
