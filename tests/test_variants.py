"""Model families besides the transformer: svd, siglip_knn and lightgcn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from nanorec import baselines, checkpoint, data, embed
from nanorec.metrics import ranking_metrics
from nanorec.models import knn, lightgcn, svd
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.packing import pack
from nanorec.params import ParamError, TrainParams
from nanorec.recommend import TransformerScorer, load_scorer, popularity, recommend
from nanorec.training import train

N_CLUSTERS = 6
CLUSTER_SIZE = 10
N_ITEMS = N_CLUSTERS * CLUSTER_SIZE


def planted_shop(n_users: int = 300, seed: int = 0) -> data.Artifacts:
    """Users who each buy 6 items of one cluster; cluster 0 has the most buyers.

    Popularity therefore recommends cluster-0 items to everyone, while a model
    that learns which items go together recommends the user's own cluster.
    """
    rng = np.random.default_rng(seed)
    weights = np.r_[0.35, np.full(N_CLUSTERS - 1, 0.65 / (N_CLUSTERS - 1))]
    rows = []
    for user in range(n_users):
        cluster = rng.choice(N_CLUSTERS, p=weights)
        bought = rng.choice(CLUSTER_SIZE, size=6, replace=False)
        for position, item in enumerate(1 + cluster * CLUSTER_SIZE + bought):
            rows.append((user, int(item), position))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_idx", "position"])
    interactions["item_id"] = interactions["item_idx"] + 1000
    last = interactions.groupby("user_id")["position"].transform("max")
    split = interactions.loc[
        interactions["position"] == last, ["user_id", "item_idx", "item_id"]
    ].reset_index(drop=True)
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, N_ITEMS + 1) + 1000,
            "item_idx": np.arange(1, N_ITEMS + 1),
        }
    )
    test_users = pd.DataFrame({"user_id": np.arange(n_users)})
    return data.Artifacts(interactions, items, split, test_users)


def cluster_vectors(seed: int = 0, dim: int = 16) -> np.ndarray:
    """(N_ITEMS + 1, dim) content vectors: a cluster direction plus small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, dim))
    cluster_of = np.arange(N_ITEMS) // CLUSTER_SIZE
    vectors = centres[cluster_of] + 0.1 * rng.normal(size=(N_ITEMS, dim))
    return np.vstack([np.zeros((1, dim)), vectors]).astype(np.float32)


def write_vectors(shop: data.Artifacts, vectors: np.ndarray, path) -> None:
    source = ["text"] * shop.n_items
    pq.write_table(embed.vectors_table(shop.items, vectors[1:], source), path)


def validation_map(shop: data.Artifacts, scorer) -> float:
    histories, targets = data.validation_histories(shop)
    popular = popularity(shop.interactions["item_idx"].to_numpy(), shop.n_items)
    topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
    return ranking_metrics(topk, targets, 10)["map@10"]


def popularity_map(shop: data.Artifacts) -> float:
    _, targets = data.validation_histories(shop)
    popular = popularity(shop.interactions["item_idx"].to_numpy(), shop.n_items)
    topk = np.tile(popular[:10], (len(targets), 1))
    return ranking_metrics(topk, targets, 10)["map@10"]


FAST_LIGHTGCN = {
    "lightgcn_dim": 16,
    "lightgcn_layers": 2,
    "lightgcn_steps": 60,
    "lightgcn_batch_size": 256,
    "lightgcn_lr": 0.05,
    "eval_interval": 20,
}


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        ("svd", {"svd_factors": 8}),
        ("siglip_knn", {"knn_last_n": 2}),
        ("lightgcn", FAST_LIGHTGCN),
    ],
)
def test_family_beats_popularity_on_planted_clusters(family, overrides, tmp_path):
    shop = planted_shop()
    vectors = tmp_path / "vectors.parquet"
    write_vectors(shop, cluster_vectors(), vectors)
    params = TrainParams(model=family, **overrides)
    fitted = baselines.fit(params, shop, vectors, 0, False, progress=False)
    scorer = baselines.load_scorer(family, fitted.meta, fitted.tensors)
    baseline = popularity_map(shop)
    assert baseline > 0.01  # the test is meaningful: popularity scores something
    assert validation_map(shop, scorer) > 2 * baseline


def test_transformer_beats_popularity_on_planted_clusters():
    shop = planted_shop()
    rows = pack(data.training_sequences(shop, False), block_size=8)
    torch.manual_seed(0)
    config = GPTConfig(n_items=N_ITEMS, block_size=8, n_layer=1, n_head=2, n_embd=32)
    model = GPT(config)
    params = TrainParams(
        max_steps=150, batch_size=16, lr=1e-2, dropout=0.0, dtype="float32"
    )
    train(model, rows, params, seed=0, progress=False)
    scorer = TransformerScorer(model.eval())
    assert validation_map(shop, scorer) > 2 * popularity_map(shop)


def test_svd_scores_match_dense_reference():
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 12, size=40)
    histories = [rng.choice(np.arange(1, 26), size=n, replace=False) for n in sizes]
    matrix = svd.history_matrix(histories, 25)
    factors = svd.fit_item_factors(matrix, 5, seed=0)

    dense = matrix.toarray().astype(np.float64)
    _, _, vt = np.linalg.svd(dense, full_matrices=False)
    v = vt[:5].T  # (26, 5) top right singular vectors
    queries = [np.array([3, 7, 7, 11]), np.array([25]), np.array([1, 2, 3, 4, 5])]
    reference = svd.history_matrix(queries, 25).toarray() @ v @ v.T
    scores = svd.SVDScorer(torch.from_numpy(factors)).score(np.arange(3), queries)
    assert scores.shape == (3, 26)
    np.testing.assert_allclose(scores.numpy(), reference, atol=1e-4)


def test_svd_history_matrix_is_binary():
    matrix = svd.history_matrix([np.array([2, 2, 5]), np.array([], dtype=np.int64)], 6)
    assert matrix.shape == (2, 7)
    assert matrix.toarray().tolist() == [
        [0, 0, 1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]


def test_svd_too_many_factors_is_rejected():
    matrix = svd.history_matrix([np.array([1, 2]), np.array([2, 3])], 3)
    with pytest.raises(ValueError, match="n_factors=5 must be between 1 and 1"):
        svd.fit_item_factors(matrix, 5, seed=0)


def brute_force_knn(vectors, history, last_n, k):
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    query = unit[history[-last_n:]].mean(axis=0)
    similarity = unit @ (query / np.linalg.norm(query))
    similarity[0] = -np.inf
    similarity[history] = -np.inf
    return np.argsort(-similarity, kind="stable")[:k]


@pytest.mark.parametrize("last_n", [1, 3])
def test_knn_top_k_matches_brute_force_cosine(last_n):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(81, 12)).astype(np.float32)
    vectors[0] = 0.0
    floor = knn.popularity_floor(np.arange(81))
    scorer = knn.ContentKnnScorer(vectors, floor, last_n=last_n, n_neighbours=15)
    histories = [rng.choice(np.arange(1, 81), size=n, replace=False) for n in (1, 4, 9)]
    top = recommend(scorer, np.arange(3), histories, 10, np.arange(1, 81))
    for row, history in zip(top, histories):
        assert list(row) == list(brute_force_knn(vectors, history, last_n, 10))


def test_knn_history_without_vectors_gets_popularity():
    vectors = np.zeros((6, 4), dtype=np.float32)
    vectors[1:4] = np.eye(4)[:3]
    counts = np.array([-1, 1, 2, 3, 9, 8])
    scorer = knn.ContentKnnScorer(vectors, knn.popularity_floor(counts))
    top = recommend(scorer, np.arange(1), [np.array([4, 5])], 3, np.arange(1, 6))
    assert list(top[0]) == [3, 2, 1]  # items 4 and 5 are seen; then by count


def test_knn_query_skips_items_without_vectors():
    vectors = np.zeros((5, 3), dtype=np.float32)
    vectors[1] = [1, 0, 0]
    vectors[2] = [0.9, 0.1, 0]
    vectors[3] = [0, 1, 0]
    scorer = knn.ContentKnnScorer(vectors, knn.popularity_floor(np.zeros(5)))
    # Item 4 has no vector, so the query is item 1, whose nearest unseen item is 2.
    top = recommend(scorer, np.arange(1), [np.array([1, 4])], 1, np.arange(1, 5))
    assert top[0, 0] == 2


def test_knn_without_content_vectors_is_rejected(tmp_path):
    shop = planted_shop(n_users=20)
    path = tmp_path / "vectors.parquet"
    write_vectors(shop, np.zeros((N_ITEMS + 1, 1), dtype=np.float32), path)
    with pytest.raises(ParamError, match="needs item content vectors"):
        baselines.fit(TrainParams(model="siglip_knn"), shop, path, 0, False)


def small_graph(seed: int = 0) -> tuple[lightgcn.Graph, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, 300)
    items = rng.integers(1, 26, 300)
    users[-1] = 40  # user row 40 buys one item; user row 41 has no edge at all
    return lightgcn.build_graph(users, items, 42, 25), users, items


def test_lightgcn_propagation_matches_pyg():
    graph, _, _ = small_graph()
    torch.manual_seed(0)
    model = lightgcn.LightGCN(graph.n_nodes, 8, 3)
    ours = lightgcn.final_embedding(model, graph)
    expected = model.get_embedding(graph.edge_index)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_lightgcn_fold_in_equals_trained_user_embedding():
    graph, users, items = small_graph()
    torch.manual_seed(0)
    model = lightgcn.LightGCN(graph.n_nodes, 8, 2)
    with torch.no_grad():
        model.embedding.weight.normal_()
    tables = lightgcn.fold_in_tables(model, graph)
    scorer = lightgcn.LightGCNScorer(
        torch.arange(100, 142),  # user ids of rows 0..41
        tables["user_base"],
        tables["item_fold"],
        tables["item_final"],
    )
    histories = [items[users == row] for row in range(41)]
    scores = scorer.score(np.arange(100, 141), histories)

    embedding = model.get_embedding(graph.edge_index).detach()
    expected = embedding[:41] @ embedding[42:].T  # users 0..40 x items 1..25
    torch.testing.assert_close(scores[:, 1:], expected, atol=1e-4, rtol=1e-4)


def test_lightgcn_unknown_user_is_scored_from_history():
    graph, _, _ = small_graph()
    torch.manual_seed(0)
    model = lightgcn.LightGCN(graph.n_nodes, 8, 2)
    tables = lightgcn.fold_in_tables(model, graph)
    assert tables["user_base"][41].abs().sum() == 0  # row 41 has no edge
    scorer = lightgcn.LightGCNScorer(torch.arange(42), **tables)
    history = [np.array([3, 4])]
    unknown = scorer.score(np.array([999]), history)
    isolated = scorer.score(np.array([41]), history)
    torch.testing.assert_close(unknown, isolated)
    assert not torch.allclose(unknown, scorer.score(np.array([0]), history))


def test_lightgcn_negatives_avoid_bought_items():
    graph, _, _ = small_graph()
    generator = torch.Generator().manual_seed(0)
    batch = torch.arange(len(graph.users))
    negatives = lightgcn.sample_negatives(graph, batch, generator, tries=20)
    bought = set(zip(graph.users.tolist(), graph.items.tolist()))
    clashes = sum((u, n) in bought for u, n in zip(graph.users.tolist(), negatives))
    assert clashes == 0
    assert negatives.min() >= 1
    assert negatives.max() <= 25


def test_training_pairs_follow_train_on_validation():
    shop = planted_shop(n_users=30)
    users, items = baselines.training_pairs(shop, train_on_validation=False)
    expected = np.concatenate(data.training_sequences(shop, False))
    np.testing.assert_array_equal(items, expected)
    assert len(users) == 30 * 5
    users_all, _ = baselines.training_pairs(shop, train_on_validation=True)
    assert len(users_all) == 30 * 6


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        ("svd", {"svd_factors": 4}),
        ("siglip_knn", {}),
        ("lightgcn", {**FAST_LIGHTGCN, "lightgcn_steps": 5}),
    ],
)
def test_saved_family_loads_with_same_scores(family, overrides, tmp_path):
    shop = planted_shop(n_users=60)
    vectors = tmp_path / "vectors.parquet"
    write_vectors(shop, cluster_vectors(), vectors)
    params = TrainParams(model=family, **overrides)
    fitted = baselines.fit(params, shop, vectors, 0, False, progress=False)
    checkpoint.save(tmp_path / "model", family, fitted.tensors, fitted.meta)
    loaded = load_scorer(tmp_path / "model")
    fresh = baselines.load_scorer(family, fitted.meta, fitted.tensors)
    histories, _ = data.validation_histories(shop)
    torch.testing.assert_close(
        loaded.score(histories.users, histories.sequences),
        fresh.score(histories.users, histories.sequences),
    )


def test_unknown_family_is_rejected():
    with pytest.raises(ParamError, match="train.model='mf' is not one of"):
        TrainParams(model="mf").validate()
