"""LightGCN on the bipartite user-item graph, trained with BPR.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation" (SIGIR 2020), through `torch_geometric.nn.LightGCN`. Node ids:
users are 0..n_users-1 and item_idx i is node n_users + i - 1. Each (user, item)
pair is one undirected edge, however often the user bought the item.

Scoring folds a history in. In LightGCN a user's layer-l embedding (l >= 1) is
sum_j e_j^(l-1) / sqrt(d_u d_j) over the user's items j, so its final embedding is
alpha_0 e_u^(0) + (1 / sqrt(d_u)) sum_j fold_j, where
fold_j = sum_{l=0}^{L-1} alpha_{l+1} e_j^(l) / sqrt(d_j) depends on the item
alone. The scorer keeps alpha_0 e_u^(0) per training user and fold_j per item and
rebuilds the user's embedding from whatever history it is given. For a history
equal to the user's training edges this is exactly LightGCN's embedding. For a
test user, the history also contains the items bought after training (the
validation item), so they count too.

NOTE: two departures. First, propagation multiplies by the normalised adjacency
D^-1/2 A D^-1/2 as a sparse CSR matrix, and its backward pass is the same product
because the matrix is symmetric. On the Beauty training graph this forward and
backward pass took 0.66 s against 4.09 s for LightGCN.get_embedding's edge-list
message passing (benchmarks/lightgcn_step.py, shared 2-core CPU), and a test checks
that the two agree. Second, the item tables come from the training graph, so an
item's own embedding does not see edges added at scoring time. A user with no
training edge has no e_u^(0) and is represented by its history alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.nn import LightGCN
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import degree, to_torch_csr_tensor

from nanorec.models.svd import history_matrix


@dataclass(frozen=True)
class Graph:
    """Unique (user, item) training pairs and the graph built from them.

    users: (E,) int64 user rows in 0..n_users-1; items: (E,) int64 item_idx;
    edge_index: (2, 2E) int64 edges in both directions between node ids;
    adjacency: (n_nodes, n_nodes) float32 sparse CSR D^-1/2 A D^-1/2.
    """

    n_users: int
    n_items: int
    users: torch.Tensor
    items: torch.Tensor
    edge_index: torch.Tensor
    adjacency: torch.Tensor

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items


def build_graph(
    user_rows: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int
) -> Graph:
    """Build the bipartite graph from (user row, item_idx) pairs.

    Args:
        user_rows: (N,) int user rows in 0..n_users-1.
        item_idx: (N,) int item_idx in 1..n_items, aligned with user_rows.
        n_users: number of user nodes.
        n_items: catalog size.

    Returns:
        The Graph of the distinct pairs.
    """
    pairs = np.unique(
        np.stack([np.asarray(user_rows), np.asarray(item_idx)], axis=1), axis=0
    ).reshape(-1, 2)
    users = torch.from_numpy(pairs[:, 0].astype(np.int64))
    items = torch.from_numpy(pairs[:, 1].astype(np.int64))
    item_nodes = n_users + items - 1
    edge_index = torch.cat(
        [torch.stack([users, item_nodes]), torch.stack([item_nodes, users])], dim=1
    )
    n_nodes = n_users + n_items
    # LGConv's normalisation: edge j -> i weighs 1 / sqrt(deg(i) deg(j)).
    norm_index, weight = gcn_norm(edge_index, None, n_nodes, add_self_loops=False)
    # Row i of the matrix gathers the messages sent to node i. torch warns that
    # CSR support is in beta and that invariant checks are off; both are known.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse (CSR|invariant)")
        adjacency = to_torch_csr_tensor(norm_index.flip(0), weight, (n_nodes, n_nodes))
    return Graph(n_users, n_items, users, items, edge_index, adjacency)


class _SymmetricSpmm(torch.autograd.Function):
    """adjacency @ x, whose gradient is adjacency @ grad for a symmetric matrix."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return adjacency @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adjacency @ grad


def propagate(model: LightGCN, graph: Graph) -> list[torch.Tensor]:
    """Layer embeddings e^(0), ..., e^(L) of every node, each (n_nodes, dim).

    Equal to the layers that LightGCN.get_embedding sums with weights alpha.
    """
    x = model.embedding.weight
    layers = [x]
    for _ in model.convs:
        x = _SymmetricSpmm.apply(graph.adjacency, x)
        layers.append(x)
    return layers


def final_embedding(model: LightGCN, graph: Graph) -> torch.Tensor:
    """Return (n_nodes, dim) sum_l alpha_l e^(l), as LightGCN.get_embedding."""
    layers = propagate(model, graph)
    return sum(layer * model.alpha[i] for i, layer in enumerate(layers))


def bpr_loss(
    model: LightGCN,
    graph: Graph,
    batch: torch.Tensor,
    negatives: torch.Tensor,
    lambda_reg: float,
) -> torch.Tensor:
    """BPR loss of a batch of training pairs against sampled negative items.

    Args:
        model: the LightGCN over graph.n_nodes nodes.
        graph: the training graph, propagated in full for each call.
        batch: (B,) int64 indices into graph.users / graph.items.
        negatives: (B,) int64 negative item_idx, one per pair.
        lambda_reg: L2 weight on the layer-0 embeddings of the nodes involved.

    Returns:
        Scalar loss from LightGCN.recommendation_loss.
    """
    users = graph.users[batch]
    positives = graph.n_users + graph.items[batch] - 1
    negatives = graph.n_users + negatives - 1
    embedding = final_embedding(model, graph)  # (n_nodes, dim)
    user_vectors = embedding[users]
    pos_rank = (user_vectors * embedding[positives]).sum(dim=-1)
    neg_rank = (user_vectors * embedding[negatives]).sum(dim=-1)
    node_id = torch.cat([users, positives, negatives])
    return model.recommendation_loss(
        pos_rank, neg_rank, node_id=node_id, lambda_reg=lambda_reg
    )


def sample_negatives(
    graph: Graph, batch: torch.Tensor, generator: torch.Generator, tries: int = 3
) -> torch.Tensor:
    """Uniform random item_idx per pair, redrawn up to `tries` times if bought.

    Returns:
        (B,) int64 item_idx in 1..n_items. After `tries` redraws a pair may keep a
        negative that the user bought, which only happens in tiny catalogs.
    """
    users = graph.users[batch]
    bought = graph.users * (graph.n_items + 1) + graph.items
    negatives = torch.randint(1, graph.n_items + 1, (len(batch),), generator=generator)
    for _ in range(tries):
        keys = users * (graph.n_items + 1) + negatives
        clash = torch.isin(keys, bought)
        if not clash.any():
            break
        redraw = torch.randint(
            1, graph.n_items + 1, (int(clash.sum()),), generator=generator
        )
        negatives[clash] = redraw
    return negatives


@torch.no_grad()
def fold_in_tables(model: LightGCN, graph: Graph) -> dict[str, torch.Tensor]:
    """The tensors that LightGCNScorer needs, from a trained model.

    Returns:
        A dict of three tensors. "user_base" is (n_users, dim) alpha_0 e_u^(0),
        zero for users without edges. "item_fold" is (n_items + 1, dim) fold_j
        from the module docstring, zero for items without edges and for padding.
        "item_final" is (n_items + 1, dim) final item embeddings, zero for padding.
    """
    layers = propagate(model, graph)
    alpha = model.alpha
    out = sum(layer * alpha[i] for i, layer in enumerate(layers))
    fold = sum(layer * alpha[i + 1] for i, layer in enumerate(layers[:-1]))
    deg = degree(graph.edge_index[1], graph.n_nodes)
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))
    fold = fold * inv_sqrt.unsqueeze(1)

    user_base = model.embedding.weight[: graph.n_users] * alpha[0]
    user_base = user_base * (deg[: graph.n_users] > 0).unsqueeze(1)
    pad = torch.zeros(1, out.shape[1])
    return {
        "user_base": user_base.detach().clone(),
        "item_fold": torch.cat([pad, fold[graph.n_users :]]).detach().clone(),
        "item_final": torch.cat([pad, out[graph.n_users :]]).detach().clone(),
    }


class LightGCNScorer:
    """Scores items by the inner product of final item and folded-in user embeddings.

    Args:
        user_ids: (n_users,) int64 user ids of the user rows, sorted ascending.
        user_base: (n_users, dim) alpha_0 e_u^(0) of each user row.
        item_fold: (n_items + 1, dim) per-item history contribution.
        item_final: (n_items + 1, dim) final item embeddings.
    """

    def __init__(
        self,
        user_ids: torch.Tensor,
        user_base: torch.Tensor,
        item_fold: torch.Tensor,
        item_final: torch.Tensor,
    ) -> None:
        self.user_ids = user_ids.numpy().astype(np.int64)
        if len(self.user_ids) > 1 and (np.diff(self.user_ids) <= 0).any():
            raise ValueError("user_ids must be sorted ascending and distinct")
        self.user_base = user_base.float()
        self.item_fold = item_fold.float()
        self._fold_np = self.item_fold.numpy()
        self.item_final = item_final.float()
        self.n_items = item_final.shape[0] - 1

    def user_vectors(
        self, users: np.ndarray, histories: Sequence[np.ndarray]
    ) -> torch.Tensor:
        """Return (B, dim) folded-in user embeddings (module docstring)."""
        rows = history_matrix(histories, self.n_items)  # (B, n_items + 1) binary
        counts = np.asarray(rows.sum(axis=1), dtype=np.float32)  # (B, 1) = d_u
        folded = np.asarray(rows @ self._fold_np) / np.sqrt(np.maximum(counts, 1.0))
        out = torch.from_numpy(folded.astype(np.float32))
        users = np.asarray(users, dtype=np.int64)
        where = np.searchsorted(self.user_ids, users)
        where = np.minimum(where, max(len(self.user_ids) - 1, 0))
        known = (
            self.user_ids[where] == users
            if len(self.user_ids)
            else np.zeros(len(users), dtype=bool)
        )
        hits = np.flatnonzero(known)
        out[hits] += self.user_base[torch.from_numpy(where[hits])]
        return out

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Return (B, n_items + 1) scores for the given users and histories."""
        return self.user_vectors(users, histories) @ self.item_final.T
