"""Run `nanorec leaderboard` on a snapshot of this checkout, away from its git state.

Copies the pipeline files (dvc.yaml, params.yaml, variants.yaml, stages, src and
more) into a new git + DVC repository under --work and commits them. It then runs
the leaderboard there with the snapshot's own src first on PYTHONPATH. Edits made
to the checkout during a long run therefore do not change the code that later
variants run. The table, chart and JSON land in --work/out, and the table has each
experiment's train and predict wall time and peak resident memory.

Example (real Beauty data, all eight variants; about 1.5 hours on 2 cores):

    python benchmarks/leaderboard.py --work /tmp/board \\
        --set ingest.format=challenge \\
        --set ingest.path=/path/to/amazon-beauty-2014-kaggle
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
FILES = ("dvc.yaml", "params.yaml", "variants.yaml", ".gitignore", "pyproject.toml")
FOLDERS = ("stages", "src", "inputs", "benchmarks")
GIT_IDENTITY = [
    "-c",
    "user.name=nanorec-bench",
    "-c",
    "user.email=bench@nanorec.invalid",
]

app = typer.Typer(add_completion=False)


def snapshot(repo: Path) -> None:
    """Copy the pipeline files into repo and commit them in a new git + DVC repo."""
    repo.mkdir(parents=True)
    for name in FILES:
        shutil.copy(ROOT / name, repo / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in FOLDERS:
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    bin_dir = Path(sys.executable).parent
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(bin_dir / "dvc"), "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", *GIT_IDENTITY, "commit", "-qm", "leaderboard snapshot"],
        cwd=repo,
        check=True,
    )


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="new folder for the repository")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="section.key=value passed to every variant"),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="run only these variants")
    ] = None,
) -> None:
    """Snapshot the checkout into work/repo and run the leaderboard there."""
    if work.exists():
        raise typer.BadParameter(f"{work} exists; pass a new folder")
    repo = work / "repo"
    snapshot(repo)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo / "src")
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    cmd = [str(bin_dir / "nanorec"), "leaderboard", "--out", str(work / "out")]
    for value in set_ or []:
        cmd += ["--set", value]
    for name in only or []:
        cmd += ["--only", name]
    result = subprocess.run(cmd, cwd=repo, env=env, check=False)
    raise typer.Exit(result.returncode)


if __name__ == "__main__":
    app()
