"""Training loop for the packed transformer: AdamW, clipping, warmup + cosine."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nanorec import distributed, resume
from nanorec.models.gpt import GPT, CompiledLoss
from nanorec.packing import PackedRows
from nanorec.params import ParamError, TrainParams

logger = logging.getLogger(__name__)

# Called with the model in eval mode; returns validation metrics incl. "map@10".
Evaluator = Callable[[GPT], dict]
# Called with (name, value, step) for every logged scalar.
MetricLogger = Callable[[str, float, int], None]


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]
    step: int  # step whose weights are in state_dict
    best_metrics: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    target_tokens: int = 0
    resumed_from: int = 0  # step of the checkpoint this run continued, 0 if none


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def learning_rate(step: int, params: TrainParams) -> float:
    """Constant lr, or linear warmup then cosine decay to min_lr over max_steps."""
    if not params.decay:
        return params.lr
    if step < params.warmup_steps:
        return params.lr * (step + 1) / params.warmup_steps
    span = max(1, params.max_steps - params.warmup_steps)
    progress = min(1.0, (step - params.warmup_steps) / span)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))
    return params.min_lr + coeff * (params.lr - params.min_lr)


def make_optimizer(model: GPT, params: TrainParams) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings, none on norms.

    With params.fused_adamw the fused kernel is used on the devices for which
    torch has one (CPU and CUDA in torch 2.13); its updates equal the default
    kernel's up to float rounding.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    device = trainable[0].device.type if trainable else "cpu"
    fused = params.fused_adamw and device in ("cpu", "cuda")
    return torch.optim.AdamW(
        groups, lr=params.lr, betas=(0.9, 0.98), fused=fused or None
    )


class DataOrder:
    """Row indices of every step, a pure function of (seed, step).

    Each epoch is a fresh permutation drawn from its own generator, so a resumed
    run sees exactly the batches the uninterrupted run would have seen.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int) -> None:
        self.n_rows = n_rows
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = math.ceil(n_rows / batch_size)
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order = torch.randperm(self.n_rows, generator=generator)
            self._epoch = epoch
        return self._order[k * self.batch_size : (k + 1) * self.batch_size]


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often the loop writes resumable checkpoints."""

    folder: Path
    interval: int  # steps between checkpoints; 0 disables them
    run_id: str  # fingerprint of params + data; see resume.fingerprint


def train(
    model: GPT,
    rows: PackedRows,
    params: TrainParams,
    seed: int,
    evaluate: Evaluator | None = None,
    log_metric: MetricLogger | None = None,
    progress: bool = True,
    checkpointing: Checkpointing | None = None,
) -> TrainResult:
    """Train `model` in place on packed rows for params.max_steps steps.

    Args:
        model: a freshly built GPT.
        rows: packed training rows.
        params: the train section of params.yaml.
        seed: drives the data order and dropout.
        evaluate: validation scorer, run every params.eval_interval steps and at
            the end; with params.keep_best the best weights by MAP@10 are returned.
        log_metric: receives loss, lr and validation metrics.
        progress: show a progress bar.
        checkpointing: write a checkpoint every `interval` steps and at the end,
            and continue from the latest one of the same run if there is one.

    Under torchrun (WORLD_SIZE > 1) each process trains on its share of every
    global batch of params.batch_size rows; only rank 0 evaluates, logs and
    writes checkpoints, and only its result carries the chosen weights.

    Returns:
        TrainResult with the chosen weights (on the CPU) and the loss curve.
    """
    if len(rows.idx) == 0:
        raise ValueError("no training rows: every history has fewer than two items")
    context = distributed.from_env()
    device = distributed.resolve_device(params.device, context)
    if model.config.attention == "flex" and device.type == "cpu":
        raise ParamError(
            "train.attention=flex cannot train on CPU because flex_attention has "
            "no CPU backward pass: set train.attention=sdpa, or train on CUDA"
        )
    created_group = distributed.start(context, device)
    seed_everything(seed)
    tensors = {
        name: torch.from_numpy(getattr(rows, name))
        for name in ("idx", "targets", "pos", "seq_id")
    }
    order = DataOrder(len(rows.idx), params.batch_size, seed)
    model.to(device)
    optimizer = make_optimizer(model, params)
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=params.dtype == "bfloat16"
    )
    log = log_metric or (lambda name, value, step: None)
    if not context.is_main:
        log, evaluate = (lambda name, value, step: None), None

    state = resume.Progress()
    best_model: dict[str, torch.Tensor] = {}
    restored = None
    if checkpointing is not None:
        restored = resume.load(checkpointing.folder, checkpointing.run_id)
    if restored is not None:
        model.load_state_dict(restored.model)
        optimizer.load_state_dict(restored.optimizer)
        best_model, state = restored.best_model, restored.progress
    resumed_from = state.step
    net = _wrap(model, params, context, device)
    if context.rank > 0:
        # Other ranks draw their own dropout masks; rank 0 keeps the random
        # stream of a single process.
        torch.manual_seed(seed + 7919 * context.rank + state.step)

    def save_checkpoint() -> None:
        if checkpointing is not None and checkpointing.interval > 0:
            resume.save(
                checkpointing.folder,
                checkpointing.run_id,
                model,
                best_model,
                optimizer,
                state,
            )

    bar = tqdm(
        range(state.step, params.max_steps),
        desc="train",
        disable=not (progress and context.is_main),
        initial=state.step,
        total=params.max_steps,
        mininterval=2.0,
    )
    clock = time.perf_counter()
    for step in bar:
        lr = learning_rate(step, params)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = order.batch(step)
        loss_value = _optimizer_step(
            net, model, optimizer, tensors, batch, params, autocast, context
        )
        state.losses.append(loss_value)
        state.target_tokens += int((tensors["targets"][batch] != -1).sum())
        state.step = step + 1
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        log("train/loss", loss_value, step)
        log("train/lr", lr, step)

        last = state.step == params.max_steps
        due = params.eval_interval and state.step % params.eval_interval == 0
        if evaluate and (last or due):
            model.eval()
            metrics = evaluate(model)
            for name, value in metrics.items():
                if name != "n_users":
                    log(f"val/{name}", value, step)
            logger.info("step %d loss %.4f val %s", state.step, loss_value, metrics)
            if not params.keep_best or metrics["map@10"] > state.best:
                state.best = metrics["map@10"]
                state.best_step = state.step
                state.best_metrics = {**metrics, "step": state.step}
                best_model = copy.deepcopy(model.state_dict())

        interval = checkpointing.interval if checkpointing else 0
        due = interval and (last or state.step % interval == 0)
        if due and context.is_main:
            state.seconds += time.perf_counter() - clock
            clock = time.perf_counter()
            save_checkpoint()
    state.seconds += time.perf_counter() - clock

    if not best_model:
        best_model = copy.deepcopy(model.state_dict())
        state.best_step = state.step
    model.load_state_dict(best_model)
    model.to("cpu")
    best_model = {name: value.cpu() for name, value in best_model.items()}
    # Free the DDP wrapper while every rank is still in the group. Its reducer
    # keeps a reference to the gloo group, and freeing it after a peer had
    # exited left the remaining rank waiting forever in a two-process run.
    del net
    distributed.stop(created_group)
    return TrainResult(
        state_dict=best_model,
        step=state.best_step,
        best_metrics=state.best_metrics,
        losses=state.losses,
        seconds=state.seconds,
        target_tokens=state.target_tokens,
        resumed_from=resumed_from,
    )


def _wrap(
    model: GPT, params: TrainParams, context: distributed.Context, device: torch.device
) -> torch.nn.Module:
    """The module that the training steps call: compiled and DDP-wrapped on request.

    With train.compile_loss alone, the model stays eager and only its loss over
    the catalog is compiled.

    The content buffer is frozen, so DDP does not broadcast buffers each step.
    """
    net: torch.nn.Module = model
    if params.compile:
        net = torch.compile(model)
    elif params.compile_loss:
        model.loss_function = CompiledLoss()
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(
            net, device_ids=device_ids, broadcast_buffers=False
        )
    return net


def _optimizer_step(
    net: torch.nn.Module,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    batch: torch.Tensor,
    params: TrainParams,
    autocast: torch.autocast,
    context: distributed.Context,
) -> float:
    """Take one optimizer step on the global batch; return its mean loss.

    Args:
        net: the module to call, `model` itself or a compiled or DDP wrapper.
        model: the GPT whose parameters the optimizer updates.
        optimizer: the optimizer.
        tensors: idx, targets, pos and seq_id of all rows, each (n_rows, T).
        batch: (B,) row indices of the global batch.
        params: the train section.
        autocast: the autocast context of the forward pass.
        context: this process's rank; a rank uses only its share of the rows.

    Returns:
        The mean cross-entropy over all targets of the global batch.
    """
    rows, weight = distributed.shard(batch, context), 1.0
    if len(rows) == 0:
        # Fewer rows than ranks: take part in the gradient average with weight 0.
        rows, weight = batch[:1], 0.0
    device = next(model.parameters()).device
    idx, targets, pos, seq_id = (
        tensors[name][rows].to(device, non_blocking=True)
        for name in ("idx", "targets", "pos", "seq_id")
    )

    net.train()
    with autocast:
        _, loss = net(idx, pos, seq_id, targets, params.label_smoothing)
    if context.enabled:
        # DDP averages gradients over ranks, so each rank scales its mean loss
        # by world_size times its share of the global batch's targets.
        n_global = int((tensors["targets"][batch] != -1).sum())
        share = weight * int((targets != -1).sum()) / n_global
        loss = loss * (share * context.world_size)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if params.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
    optimizer.step()

    if context.enabled:
        total = distributed.all_reduce_sum(loss.detach(), context)
        return total.item() / context.world_size
    return loss.item()
