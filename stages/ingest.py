"""Ingest stage: read the input (or generate the synthetic shop) into Parquet.

The input layout is `ingest.format`. Every repair made to dirty input is counted
under "fixes" in the metrics file, so `dvc metrics show` shows how dirty it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nanorec import ingest, synthetic
from nanorec.io import relative_to_cwd, write_json
from nanorec.logs import run, setup_logging
from nanorec.params import ParamError, load_section, load_seed, validate_file

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="folder for the Parquet tables")] = Path(
        "data/ingest"
    ),
    metrics: Annotated[Path, typer.Option(help="JSON of input statistics")] = Path(
        "metrics/ingest.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Read the input, repair and count defects, order histories, cut the split.

    The Parquet tables in OUT are replaced all together or not at all.
    """
    setup_logging()
    # Ingest is the first stage, so it validates every section of the params file.
    # A typo in the train section then fails before any stage has done work. Each
    # later stage still validates its own section, because DVC skips this stage
    # when its own inputs are unchanged.
    validate_file(params)
    cfg = load_section(params, "ingest")
    if cfg.format != "synthetic" and not Path(cfg.path).exists():
        raise ParamError(
            f"ingest.path={cfg.path!r} does not exist"
            f"{relative_to_cwd(Path(cfg.path))}. Set ingest.path in {params} to "
            f"the {cfg.format} input file or folder, or override it, e.g. "
            "dvc exp run -S ingest.path=/data/beauty"
        )
    if cfg.format == "synthetic":
        raw = synthetic.generate(
            cfg.synthetic_users,
            cfg.synthetic_items,
            seed=load_seed(params),
            shape=cfg.synthetic_shape,
        )
    else:
        raw = ingest.read_input(cfg.format, Path(cfg.path))
    dataset = ingest.normalise(
        raw,
        dedupe_pairs=cfg.dedupe_pairs,
        max_history=cfg.max_history,
        rating_min=cfg.rating_min,
        rating_max=cfg.rating_max,
    )

    # Synthetic item images go to OUT/images, replaced together with the tables.
    def draw_images(folder: Path) -> None:
        synthetic.write_images(raw.item_metadata, folder / "images")

    extra = draw_images if cfg.synthetic_images else None
    ingest.write_dataset(dataset, out, extra=extra)
    write_json(dataset.stats, metrics)


if __name__ == "__main__":
    run(app)
