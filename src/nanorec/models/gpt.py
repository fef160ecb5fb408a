"""A nanoGPT-style causal transformer over item-id sequences.

Follows the GPT-2 layout as nanoGPT writes it (Radford et al. 2019; Karpathy,
nanoGPT): pre-LayerNorm blocks, learned position embeddings and an output layer tied
to the token embedding, here the item embedding with row 0 as padding.

NOTE: departures from nanoGPT. Several sequences share one row: attention is
restricted to the same sequence and the past through a mask built from per-token
sequence ids, and position ids restart at 0 for each sequence. Frozen item content
vectors go through a trainable linear projection and are added to the input
embeddings. The loss is computed only at non-padding positions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import (
    BlockMask,
    create_block_mask,
    flex_attention,
)

logger = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("sdpa", "flex")

# (logits, targets, label_smoothing) -> mean loss.
LossFunction = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def next_item_loss(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of (N, V) logits against (N,) targets, in float32."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


class CompiledLoss:
    """`next_item_loss` through torch.compile, with eager as the fallback.

    Eager, the loss over a catalog of V items makes several passes over the (N, V)
    logits: a float32 copy, the log-softmax, a zero-filled gradient and its
    backward. Compiled, inductor fuses the cast, the log-softmax, the gather and
    their backward into fewer passes. With 12,101 items, a bf16 training step of the
    original 6-layer size took 40 % less time on a 2-core CPU (docs/benchmarks.md).
    Shapes are dynamic because N, the number of real targets, changes from batch
    to batch. When compilation fails, for example because no C++ compiler is
    installed, the eager loss is used from then on.
    """

    def __init__(self) -> None:
        self._compiled: LossFunction | None = torch.compile(
            next_item_loss, dynamic=True
        )

    def __call__(
        self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float
    ) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(logits, targets, label_smoothing)
            except Exception as error:  # noqa: BLE001 - any compiler failure
                logger.warning(
                    "torch.compile of the loss failed (%s: %s); using the eager loss",
                    type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "",
                )
                self._compiled = None
        return next_item_loss(logits, targets, label_smoothing)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask comes from torch.rand on CPU.

    On CPU, nn.Dropout draws its mask with bernoulli_, which measured about 3
    times slower than torch.rand for the same number of elements, and a training
    step calls dropout twice per block and once on the embeddings. The output has
    the same distribution: each element kept with probability 1 - p and scaled by
    1 / (1 - p). On other devices this is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))


@dataclass(frozen=True)
class GPTConfig:
    n_items: int  # catalog size; vocabulary is n_items + 1 with 0 as padding
    block_size: int = 32
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    content_dim: int = 0  # width of the frozen content vectors; 0 disables them
    bias: bool = False
    # sdpa | flex: the attention kernel. Both compute the same function; flex has
    # no backward pass on CPU (torch 2.13), so it can train only on CUDA.
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_BACKENDS:
            raise ValueError(
                f"attention={self.attention!r} is not one of {list(ATTENTION_BACKENDS)}"
            )


def document_causal_mask(seq_id: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask for packed rows.

    Args:
        seq_id: (B, T) int sequence id of each token.

    Returns:
        (B, 1, T, T) bool; True where query t may attend to key s, that is s <= t
        and both tokens belong to the same sequence.
    """
    t = seq_id.size(1)
    causal = torch.ones(t, t, dtype=torch.bool, device=seq_id.device).tril()
    same = seq_id.unsqueeze(2) == seq_id.unsqueeze(1)
    return (same & causal).unsqueeze(1)


def document_block_mask(seq_id: torch.Tensor) -> BlockMask:
    """Build the mask of `document_causal_mask` as a flex_attention BlockMask.

    Args:
        seq_id: (B, T) int sequence id of each token.

    Returns:
        A BlockMask for B rows, shared by all heads, of T queries and T keys.
    """
    b, t = seq_id.shape

    def same_sequence_and_past(batch, head, q_idx, kv_idx):
        same = seq_id[batch, q_idx] == seq_id[batch, kv_idx]
        return same & (kv_idx <= q_idx)

    return create_block_mask(
        same_sequence_and_past, b, None, t, t, device=seq_id.device
    )


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | BlockMask) -> torch.Tensor:
        """Attend within each packed sequence.

        Args:
            x: (B, T, C) input.
            mask: (B, 1, T, T) bool mask for SDPA, or the same mask as a BlockMask
                for flex_attention.

        Returns:
            (B, T, C) output.
        """
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        if isinstance(mask, BlockMask):
            # NOTE: flex_attention has no dropout on the attention weights, so
            # with flex only the residual and embedding dropouts apply.
            y = flex_attention(q, k, v, block_mask=mask)
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
            )
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | BlockMask) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Next-item transformer.

    Args:
        config: model sizes.
        content: optional (n_items + 1, content_dim) float tensor of frozen content
            vectors indexed by item_idx; required when config.content_dim > 0.
    """

    def __init__(self, config: GPTConfig, content: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.n_items + 1, config.n_embd, padding_idx=0)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        if config.content_dim:
            if content is None:
                content = torch.zeros(config.n_items + 1, config.content_dim)
            expected = (config.n_items + 1, config.content_dim)
            if tuple(content.shape) != expected:
                raise ValueError(
                    f"content vectors have shape {tuple(content.shape)}, "
                    f"expected {expected}"
                )
            self.register_buffer("content", content.float().contiguous())
            self.content_proj = nn.Linear(config.content_dim, config.n_embd, bias=False)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2 scaled init of residual outputs
                std = 0.02 / math.sqrt(2 * config.n_layer)
                torch.nn.init.normal_(param, mean=0.0, std=std)
        with torch.no_grad():
            self.wte.weight[0].zero_()
        # Training may swap in a CompiledLoss. It is not part of the weights.
        self.loss_function: LossFunction = next_item_loss

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden(
        self, idx: torch.Tensor, pos: torch.Tensor, seq_id: torch.Tensor
    ) -> torch.Tensor:
        """Final hidden states.

        Args:
            idx: (B, T) item_idx, 0 on padding.
            pos: (B, T) position of each token within its own sequence.
            seq_id: (B, T) sequence id of each token within its row.

        Returns:
            (B, T, n_embd) after the final LayerNorm.
        """
        if pos.max() >= self.config.block_size:
            raise ValueError(
                f"position {int(pos.max())} exceeds block_size {self.config.block_size}"
            )
        x = self.wte(idx) + self.wpe(pos)
        if self.config.content_dim:
            x = x + self.content_proj(self.content[idx])
        x = self.drop(x)
        # One mask per batch, shared by every layer.
        mask: torch.Tensor | BlockMask
        if self.config.attention == "flex":
            mask = document_block_mask(seq_id)
        else:
            mask = document_causal_mask(seq_id)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Score every item: h (..., n_embd) -> (..., n_items + 1)."""
        return h @ self.wte.weight.t()

    def forward(
        self,
        idx: torch.Tensor,
        pos: torch.Tensor,
        seq_id: torch.Tensor,
        targets: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (logits, loss).

        With targets (B, T; -1 = ignore), logits are (N, n_items + 1) for the N
        non-ignored positions only and loss is their mean cross-entropy. Without
        targets, logits are (B, T, n_items + 1) and loss is None.
        """
        h = self.hidden(idx, pos, seq_id)
        if targets is None:
            return self.logits(h), None
        keep = targets != -1
        logits = self.logits(h[keep])
        return logits, self.loss_function(logits, targets[keep], label_smoothing)
