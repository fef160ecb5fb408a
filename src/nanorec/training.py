"""Training loop for the packed transformer: AdamW, clipping, warmup + cosine."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from nanorec.models.gpt import GPT
from nanorec.packing import PackedRows
from nanorec.params import TrainParams

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
    """AdamW with weight decay on matrices and embeddings, none on norms."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=params.lr, betas=(0.9, 0.98))


def batches(n_rows: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """An endless stream of row-index batches; each epoch is a fresh shuffle."""
    while True:
        order = torch.randperm(n_rows, generator=generator)
        for start in range(0, n_rows, batch_size):
            yield order[start : start + batch_size]


def train(
    model: GPT,
    rows: PackedRows,
    params: TrainParams,
    seed: int,
    evaluate: Evaluator | None = None,
    log_metric: MetricLogger | None = None,
    progress: bool = True,
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

    Returns:
        TrainResult with the chosen weights and the loss curve.
    """
    if len(rows.idx) == 0:
        raise ValueError("no training rows: every history has fewer than two items")
    seed_everything(seed)
    tensors = {
        name: torch.from_numpy(getattr(rows, name))
        for name in ("idx", "targets", "pos", "seq_id")
    }
    generator = torch.Generator().manual_seed(seed)
    stream = batches(len(rows.idx), params.batch_size, generator)
    optimizer = make_optimizer(model, params)
    autocast = torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=params.dtype == "bfloat16"
    )
    log = log_metric or (lambda name, value, step: None)

    result = TrainResult(state_dict={}, step=0)
    best = -1.0
    start_time = time.perf_counter()
    bar = tqdm(range(params.max_steps), desc="train", disable=not progress)
    for step in bar:
        lr = learning_rate(step, params)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(stream)
        idx, targets, pos, seq_id = (
            tensors[n][batch] for n in ("idx", "targets", "pos", "seq_id")
        )

        model.train()
        with autocast:
            _, loss = model(idx, pos, seq_id, targets, params.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if params.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
        optimizer.step()

        loss_value = loss.item()
        result.losses.append(loss_value)
        result.target_tokens += int((targets != -1).sum())
        bar.set_postfix(loss=f"{loss_value:.3f}")
        log("train/loss", loss_value, step)
        log("train/lr", lr, step)

        last = step + 1 == params.max_steps
        if evaluate and (
            last or (params.eval_interval and (step + 1) % params.eval_interval == 0)
        ):
            model.eval()
            metrics = evaluate(model)
            for name, value in metrics.items():
                if name != "n_users":
                    log(f"val/{name}", value, step)
            logger.info("step %d loss %.4f val %s", step + 1, loss_value, metrics)
            if not params.keep_best or metrics["map@10"] > best:
                best = metrics["map@10"]
                result.best_metrics = {**metrics, "step": step + 1}
                result.state_dict = copy.deepcopy(model.state_dict())
                result.step = step + 1
    result.seconds = time.perf_counter() - start_time
    if not result.state_dict:
        result.state_dict = copy.deepcopy(model.state_dict())
        result.step = params.max_steps
    model.load_state_dict(result.state_dict)
    return result
