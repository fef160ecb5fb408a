"""Seconds per LightGCN training step: PyG's edge-list propagation against CSR.

Builds the training graph of an ingest folder, without the validation items. Then
it times the forward and backward pass of the full-graph propagation that every
BPR step does, in two ways. One is `LightGCN.get_embedding` on the edge list
(PyG's message passing), the other `nanorec.models.lightgcn.final_embedding` (one
sparse CSR product per layer). It prints one JSON line per way with the median of
--repeats timed runs.

Example (real Beauty data, after the ingest stage):

    python benchmarks/lightgcn_step.py --ingested data/ingest --repeats 5
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from nanorec import baselines, data
from nanorec.models import lightgcn

app = typer.Typer(add_completion=False)


def time_step(step: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median seconds of step().sum().backward() over repeats, after one warm-up."""
    step().sum().backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step().sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")],
    dim: Annotated[int, typer.Option(help="embedding width")] = 64,
    layers: Annotated[int, typer.Option(help="propagation layers")] = 3,
    repeats: Annotated[int, typer.Option(help="timed runs per way")] = 5,
) -> None:
    """Time one propagation (forward + backward) of both implementations."""
    artifacts = data.load(ingested)
    users, items = baselines.training_pairs(artifacts, train_on_validation=False)
    user_ids, rows = np.unique(users, return_inverse=True)
    graph = lightgcn.build_graph(rows, items, len(user_ids), artifacts.n_items)
    torch.manual_seed(0)
    model = lightgcn.LightGCN(graph.n_nodes, dim, layers)
    common = {
        "nodes": graph.n_nodes,
        "edges": int(graph.edge_index.shape[1]),
        "dim": dim,
        "layers": layers,
        "threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    ways = {
        "pyg_edge_list": lambda: model.get_embedding(graph.edge_index),
        "csr_symmetric": lambda: lightgcn.final_embedding(model, graph),
    }
    for name, step in ways.items():
        seconds = time_step(step, repeats)
        print(json.dumps({"way": name, "seconds": round(seconds, 4), **common}))


if __name__ == "__main__":
    app()
