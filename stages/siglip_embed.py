"""Content-vector stage: one frozen vector per item, from its images or text."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import typer
from tqdm import tqdm

from nanorec import data, embed, images
from nanorec.io import atomic_path, write_json
from nanorec.logs import run, setup_logging
from nanorec.params import EmbedParams, load_section

app = typer.Typer(add_completion=False)
logger = logging.getLogger("stages.siglip_embed")


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    ingested_images: Annotated[
        Path, typer.Option(help="item images written by the ingest stage, if any")
    ] = Path("data/ingest/images"),
    out: Annotated[Path, typer.Option(help="Parquet of item vectors")] = Path(
        "data/embed/item_vectors.parquet"
    ),
    image_errors: Annotated[
        Path, typer.Option(help="CSV of the image files that could not be used")
    ] = Path("data/embed/image_errors.csv"),
    metrics: Annotated[Path, typer.Option(help="JSON of coverage counts")] = Path(
        "metrics/embed.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Encode every item's image or text; an item with neither gets a zero row.

    Beside OUT go a .npy matrix (row = item_idx) and a .faiss inner-product index.
    """
    setup_logging()
    cfg = load_section(params, "siglip_embed")
    image_errors.unlink(missing_ok=True)  # written again only when images are read
    items = pd.read_parquet(ingested / data.ITEMS)
    texts = embed.item_texts(items)
    summary: dict = {"encoder": cfg.encoder, "n_items": len(items)}

    if cfg.encoder == "none":
        vectors = np.zeros((len(items), 1), dtype=np.float32)
        source = np.full(len(items), "none", dtype=object)
        summary |= {"model": "", "revision": ""}
    elif cfg.encoder == "minilm":
        model_path = cfg.model or None
        device = embed.resolve_device(cfg.device)
        vectors, name = embed.encode_texts(texts, cfg.batch_size, model_path, device)
        source = np.array(["text" if t else "none" for t in texts], dtype=object)
        summary |= {"model": name, "revision": embed.minilm_revision(model_path)}
    else:
        vectors, source, image_summary = _dual_encoder_vectors(
            items, texts, cfg, [Path(cfg.images), ingested_images], image_errors
        )
        summary |= image_summary

    table = embed.vectors_table(items, vectors, list(source))
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    embed.write_exports(table, len(items), out)
    counts = {f"n_{s}": int((source == s).sum()) for s in embed.SOURCES}
    summary |= {"dim": int(vectors.shape[1]), "inputs": cfg.inputs, **counts}
    logger.info("item vectors: %s", summary)
    write_json(summary, metrics)


def _dual_encoder_vectors(
    items: pd.DataFrame,
    texts: list[str],
    cfg: EmbedParams,
    folders: list[Path],
    image_errors: Path,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images first (when inputs allow), then the text tower for items left over."""
    encoder = embed.DualEncoder.load(cfg.model, cfg.revision, cfg.device)
    vectors = np.zeros((len(items), encoder.dim), dtype=np.float32)
    source = np.full(len(items), "none", dtype=object)
    summary: dict = {
        "model": encoder.name,
        "revision": encoder.revision,
        "device": encoder.device,
    }

    if cfg.inputs != "text":
        paths, n_remote = images.item_image_paths(items, folders, Path(cfg.images))
        report = images.ImageReport()
        batches = images.iter_image_batches(
            tqdm(paths, desc="item images", unit="item"),
            items["item_id"].to_numpy(),
            cfg.average_images,
            cfg.batch_size,
            report,
        )
        image_rows, n_used = embed.image_vectors(encoder, batches, len(items))
        has_image = n_used > 0
        vectors[has_image] = image_rows[has_image]
        source[has_image] = "image"
        report.write_errors(image_errors)
        summary |= {
            "average_images": cfg.average_images,
            "n_items_with_image_files": sum(1 for p in paths if p),
            "n_image_files_used": int(n_used.sum()),
            "n_image_files_converted": report.n_converted,
            "n_image_files_failed": len(report.failures),
            "n_image_urls_skipped": n_remote,
        }

    if cfg.inputs != "image":
        rows = [i for i, text in enumerate(texts) if text and source[i] == "none"]
        todo = tqdm([texts[i] for i in rows], desc="item texts", unit="item")
        vectors[rows] = embed.text_vectors(encoder, todo, cfg.batch_size)
        source[rows] = "text"
    return vectors, source, summary


if __name__ == "__main__":
    run(app)
