"""Measure items per second of the siglip_embed encoders and print a Markdown table.

Paths timed, each through the functions the stage calls:
- SigLIP image path: decode JPEG files, preprocess, get_image_features, pooling.
- SigLIP text path: tokenize to the model's length, get_text_features.
- MiniLM text path: the bundled sentence-transformers encoder (the default).

The SigLIP models have random weights written by nanorec.tiny_siglip, so no
download is needed. One has the layer sizes of SigLIP base (patch 16, 224 px, 12
layers of width 768 per tower), so it runs at about the speed of the real
checkpoint; only its tokenizer vocabulary is smaller. The other is the tiny model
of the tests, whose image speed shows the cost of decoding and preprocessing. Load
time is measured apart from encoding.

    python benchmarks/embed_speed.py --work /tmp/embed-bench
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
import typer
from common import load_average
from PIL import Image, ImageDraw

from nanorec import embed, images, synthetic, tiny_siglip

app = typer.Typer(add_completion=False)

SIGLIP_BASE = {
    "image_size": 224,
    "text_length": 64,
    "patch_size": 16,
    "hidden_size": 768,
    "n_layer": 12,
    "n_head": 12,
}


def write_photos(folder: Path, n: int, side: int) -> pd.DataFrame:
    """Write n JPEG product-like photos; returns their items table."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(n)]
    for asin in asins:
        pixels = rng.integers(150, 255, (side, side, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        ImageDraw.Draw(image).ellipse(
            (side // 4, side // 4, side - 40, side - 40), colour
        )
        image.save(folder / f"{asin}.jpg", quality=90)
    return pd.DataFrame({"parent_asin": asins, "item_id": np.arange(n)})


def shop_texts(n: int) -> list[str]:
    """Item texts of the synthetic shop, as the stage builds them."""
    meta = synthetic.generate(n_users=50, n_items=n, seed=0).item_metadata
    items = pd.DataFrame(
        {
            "title": meta["title"].str.replace("&amp;", "&"),
            "store": meta["store"],
            "categories": [c.replace("'", "").split(", ") for c in meta["categories"]],
        }
    )
    return embed.item_texts(items)


def time_images(model: Path, photos: Path, items: pd.DataFrame, batch: int) -> dict:
    start = time.perf_counter()
    encoder = embed.DualEncoder.load(str(model))
    loaded = time.perf_counter()
    paths, _ = images.item_image_paths(items, [photos], photos)
    report = images.ImageReport()
    batches = images.iter_image_batches(
        paths, items["item_id"].to_numpy(), False, batch, report
    )
    _, counts = embed.image_vectors(encoder, batches, len(items))
    done = time.perf_counter()
    assert counts.sum() == len(items), "every benchmark photo must decode"
    return {"load": loaded - start, "encode": done - loaded, "n": len(items)}


def time_siglip_texts(model: Path, texts: list[str], batch: int) -> dict:
    start = time.perf_counter()
    encoder = embed.DualEncoder.load(str(model))
    loaded = time.perf_counter()
    embed.text_vectors(encoder, texts, batch)
    return {
        "load": loaded - start,
        "encode": time.perf_counter() - loaded,
        "n": len(texts),
    }


def time_minilm(texts: list[str], batch: int) -> dict:
    start = time.perf_counter()
    embed.encode_texts([""], batch)  # loads the model, encodes nothing
    load = time.perf_counter() - start
    start = time.perf_counter()
    embed.encode_texts(texts, batch)
    return {"load": load, "encode": time.perf_counter() - start - load, "n": len(texts)}


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="folder for models and photos")] = Path(
        "/tmp/embed-bench"
    ),
    n_images: Annotated[int, typer.Option(help="photos to encode")] = 64,
    n_texts: Annotated[int, typer.Option(help="texts per text path")] = 128,
    side: Annotated[int, typer.Option(help="photo side in pixels")] = 500,
    batch_size: Annotated[int, typer.Option(help="items per encoder call")] = 32,
) -> None:
    """Time the image and text paths of siglip_embed and print a Markdown table."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = work / "siglip-base-random"
    if not (base / "model.safetensors").exists():
        tiny_siglip.build(base, **SIGLIP_BASE)
    tiny = tiny_siglip.build(work / "siglip-tiny")
    items = write_photos(work / "photos", n_images, side)
    texts = shop_texts(max(n_texts, 20))[:n_texts]
    minilm_texts = shop_texts(max(4 * n_texts, 20))[: 4 * n_texts]

    rows = [
        (
            "SigLIP image",
            "base size, random",
            time_images(base, work / "photos", items, batch_size),
        ),
        (
            "SigLIP text",
            "base size, random",
            time_siglip_texts(base, texts, batch_size),
        ),
        (
            "SigLIP image",
            "tiny, random (32 px)",
            time_images(tiny, work / "photos", items, batch_size),
        ),
        ("MiniLM text", "all-MiniLM-L6-v2", time_minilm(minilm_texts, batch_size)),
    ]

    print(
        f"date {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {load_average()}"
    )
    print(f"photos {side}x{side} JPEG, batch size {batch_size}\n")
    print("| path | model | items | load s | encode s | items/s |")
    print("|---|---|---:|---:|---:|---:|")
    for path, model, t in rows:
        rate = t["n"] / t["encode"]
        print(
            f"| {path} | {model} | {t['n']} | {t['load']:.1f} | {t['encode']:.1f} "
            f"| {rate:.1f} |"
        )


if __name__ == "__main__":
    app()
