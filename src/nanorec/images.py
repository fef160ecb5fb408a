"""Find, decode and batch item images for the image encoder.

Naming scheme of an image folder: `<parent_asin>.<ext>` is an item's main image and
`<parent_asin>_<n>.<ext>` (n = 1, 2, ...) are further images of it, in n order. The
extensions read are .jpg, .jpeg, .png and .webp, in any letter case. The raw id is
the item's parent_asin, or its raw_item_id when it has no parent_asin.

An item may also list local files in the `image_url` column of the items table,
which ingest fills from item_metadata.csv. A cell contains one path, several joined by
";", a file:// URL, or a list literal such as "['a.jpg', 'b.jpg']". Listed files
come first, so the first is the main image; relative paths are read from the image
folder. Web URLs are not downloaded: they are counted and skipped.

A file that cannot be decoded (unreadable, truncated, unsupported pixel mode) is
logged with its name, counted and skipped; it never stops the run.
"""

from __future__ import annotations

import ast
import csv
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from nanorec.io import atomic_path

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
# Items-table column that may list local image files.
PATH_COLUMN = "image_url"

# Modes that convert to 8-bit RGB without changing what the picture shows. Modes
# of more than 8 bits per channel (I, I;16, F) have no single such mapping, so
# files in them are rejected.
_OPAQUE_MODES = {"RGB", "L", "1", "P", "CMYK", "YCbCr"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# The first failures are logged by name. All of them go to the error file.
_LOGGED_FAILURES = 20


@dataclass
class ImageReport:
    """Counts and failures of one pass over the item images."""

    n_decoded: int = 0
    n_converted: int = 0
    failures: list[tuple[int, str, str]] = field(default_factory=list)

    def fail(self, item_id: int, path: Path, reason: str) -> None:
        """Record a file that could not be used, logging the first few by name."""
        self.failures.append((int(item_id), str(path), reason))
        if len(self.failures) <= _LOGGED_FAILURES:
            logger.warning("skipped image %s of item %d: %s", path, item_id, reason)
        if len(self.failures) == _LOGGED_FAILURES + 1:
            logger.warning("more images failed; all are listed in the error file")

    def write_errors(self, path: Path) -> None:
        """Write every failure as CSV (item_id, path, error), atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item_id", "path", "error"])
            writer.writerows(self.failures)
        if self.failures:
            logger.warning(
                "%d image files could not be used; all are listed in %s",
                len(self.failures),
                path,
            )


def find_images(folder: Path, asins: Iterable[str]) -> dict[str, list[Path]]:
    """Map each raw item id to its image files in a folder, main image first.

    Args:
        folder: the image folder; a missing folder gives an empty map.
        asins: raw item ids (parent_asin); files of other ids are ignored.

    Returns:
        {asin: [path, ...]} for the ids that have at least one file. The main image
        `<asin>.<ext>` comes first, then `<asin>_<n>.<ext>` by n. Among files with
        the same stem, the order of IMAGE_EXTENSIONS decides.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    wanted = {a for a in asins if a}
    ranked: dict[str, list[tuple[int, int, str]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            ext = ext.lower()
            if ext not in IMAGE_EXTENSIONS or not entry.is_file():
                continue
            asin, number = _split_stem(stem, wanted)
            if asin is None:
                continue
            rank = (number, IMAGE_EXTENSIONS.index(ext), entry.name)
            ranked.setdefault(asin, []).append(rank)
    return {
        asin: [folder / name for _, _, name in sorted(ranks)]
        for asin, ranks in ranked.items()
    }


def _split_stem(stem: str, wanted: set[str]) -> tuple[str | None, int]:
    # An id may itself contain "_", so the whole stem is tried first.
    if stem in wanted:
        return stem, 0
    base, _, suffix = stem.rpartition("_")
    if base in wanted and suffix.isdigit():
        return base, int(suffix)
    return None, 0


def parse_path_list(value: object) -> list[str]:
    """Split one `image_url` cell into entries, or [] for an empty cell."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            return [str(v).strip() for v in parsed if str(v).strip()]
    return [part.strip() for part in text.split(";") if part.strip()]


def item_image_paths(
    items: pd.DataFrame, folders: Sequence[Path], base: Path
) -> tuple[list[list[Path]], int]:
    """List the image files of every item, main image first.

    Args:
        items: the items table (parent_asin, optionally raw_item_id and
            image_url).
        folders: image folders searched with the naming scheme, in order.
        base: folder against which relative listed paths are read.

    Returns:
        (paths, n_remote): one list per row of `items`, without duplicates and empty
        for an item with no image, and the number of web URLs skipped. Files are
        not opened here.
    """
    keys = item_keys(items)
    found = [find_images(folder, keys) for folder in folders]
    has_column = PATH_COLUMN in items.columns
    listed = items[PATH_COLUMN] if has_column else [None] * len(items)
    paths = []
    n_remote = 0
    for key, cell in zip(keys, listed):
        candidates = []
        for entry in parse_path_list(cell):
            if _is_remote(entry):
                n_remote += 1
                continue
            candidates.append(base / entry.removeprefix("file://"))
        for by_key in found:
            candidates += by_key.get(key, [])
        paths.append(list(dict.fromkeys(candidates)))
    if n_remote:
        logger.info("skipped %d image URLs: only local files are read", n_remote)
    return paths, n_remote


def item_keys(items: pd.DataFrame) -> list[str]:
    """Return the raw id that names each item's image files ("" when none)."""
    keys = [str(a) if isinstance(a, str) else "" for a in items["parent_asin"]]
    if "raw_item_id" in items.columns:
        keys = [k or str(r) for k, r in zip(keys, items["raw_item_id"])]
    return keys


def _is_remote(entry: str) -> bool:
    scheme, sep, _ = entry.partition("://")
    return bool(sep) and scheme.lower() != "file"


def load_rgb(path: Path) -> tuple[Image.Image, bool]:
    """Decode an image fully and return it as RGB.

    Transparent pixels are laid on white, as product photos are shown, and EXIF
    orientation is applied.

    Returns:
        (image, converted): converted is True when the file was not RGB.

    Raises:
        OSError, SyntaxError, ValueError or Image.DecompressionBombError when the
        file is unreadable, truncated or too large; ValueError for pixel modes
        such as I;16 or F that have no faithful RGB form.
    """
    with Image.open(path) as image:
        image.load()  # decodes now, so a truncated file raises here
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode = "PA"
        image = image.convert("RGBA")
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), True
    if mode not in _OPAQUE_MODES:
        raise ValueError(f"unsupported pixel mode {mode}; save the file as RGB")
    return image.convert("RGB"), mode != "RGB"


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def iter_image_batches(
    paths: Iterable[list[Path]],
    item_ids: Sequence[int],
    average: bool,
    batch_size: int,
    report: ImageReport,
) -> Iterator[tuple[np.ndarray, list[Image.Image]]]:
    """Decode item images and yield them in batches with the row of their item.

    Args:
        paths: per item, its image files main first (see item_image_paths).
        item_ids: the item_id of each row, for the error log.
        average: True yields every readable image of an item; False only the
            first readable one, so a broken main image falls back to the next.
        batch_size: images per yielded batch.
        report: receives the counts and the failures.

    Yields:
        (rows, images): int64 array of item rows and the RGB images, same length.
    """
    rows: list[int] = []
    batch: list[Image.Image] = []
    for row, candidates in enumerate(paths):
        for path in candidates:
            try:
                image, converted = load_rgb(path)
            except FileNotFoundError:
                report.fail(item_ids[row], path, "file not found")
                continue
            except _DECODE_ERRORS as err:
                report.fail(item_ids[row], path, f"{type(err).__name__}: {err}")
                continue
            report.n_decoded += 1
            report.n_converted += int(converted)
            rows.append(row)
            batch.append(image)
            if len(batch) == batch_size:
                yield np.asarray(rows, dtype=np.int64), batch
                rows, batch = [], []
            if not average:
                break
    if batch:
        yield np.asarray(rows, dtype=np.int64), batch
