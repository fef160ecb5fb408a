"""Shared fixtures: a copy of the project in a temporary git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Subprocesses (dvc, stage scripts) must use this interpreter's environment.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
GIT_IDENTITY = [
    "-c",
    "user.name=nanorec-tests",
    "-c",
    "user.email=tests@nanorec.invalid",
]


def data_root() -> Path | None:
    """The shared real-data folder, from NANOREC_DATA_DIR, when it exists."""
    value = os.environ.get("NANOREC_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def run(
    cmd: list[str], cwd: Path, env: dict | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it exits non-zero.

    With a timeout in seconds, a command that hangs fails the test instead of
    blocking the suite.
    """
    try:
        result = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        # TimeoutExpired keeps the partial output as bytes even in text mode.
        stdout, stderr = (
            out.decode(errors="replace") if isinstance(out, bytes) else out or ""
            for out in (err.stdout, err.stderr)
        )
        raise AssertionError(
            f"{' '.join(cmd)} did not finish within {timeout} s\n"
            f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}"
        ) from err
    if result.returncode:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def edit_params(repo: Path, **sections: dict) -> None:
    """Update keys of params.yaml in a copied repository."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        if isinstance(values, dict):
            params.setdefault(section, {}).update(values)
        else:
            params[section] = values
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A committed git + DVC copy of the pipeline files, with a small default."""
    return make_project(tmp_path)


@pytest.fixture(scope="module")
def reproduced_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `project` copy on which `dvc repro` has run, shared by one test module.

    The module's tests share its files, so they must not change them.
    """
    repo = make_project(tmp_path_factory.mktemp("reproduced"))
    run(["dvc", "repro"], repo)
    return repo


def make_project(parent: Path) -> Path:
    """Copy the pipeline files into parent/repo and commit them with git + DVC."""
    repo = parent / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("stages", "src", "inputs", "benchmarks"):
        if (ROOT / name).exists():
            shutil.copytree(
                ROOT / name,
                repo / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
    edit_params(
        repo,
        ingest={"synthetic_users": 400, "synthetic_items": 120},
        train={"max_steps": 40, "eval_interval": 20, "eval_users": 200},
    )
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", *GIT_IDENTITY, "commit", "-qm", "init"], repo)
    return repo
