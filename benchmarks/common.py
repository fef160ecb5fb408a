"""Helpers shared by the benchmark scripts: params overrides and stage runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """Return a copy of params with `section.key=value` overrides applied.

    Values are read the way YAML reads them, so numbers and booleans keep their
    types.
    """
    out = json.loads(json.dumps(params))
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = yaml.safe_load(value)
        else:
            out[section] = yaml.safe_load(value)
    return out


def run_stage(name: str, params: Path, *args: str) -> dict:
    """Run one stage script as a child process.

    Returns:
        {"seconds": wall time, "peak_mib": the child's peak resident memory}.

    Raises:
        RuntimeError: the stage exited non-zero; the message ends with its stderr.
    """
    cmd = [sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", str(params)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(
            [*cmd, *args], stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
        # wait4 returns the resource usage of this child alone.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        errors = stderr.read()
    if child.returncode:
        raise RuntimeError(f"stage {name} failed:\n{errors[-3000:]}")
    # Linux reports ru_maxrss in KiB.
    return {"seconds": round(seconds, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1)}


def load_average() -> float:
    """The 1-minute load average of the machine."""
    return round(os.getloadavg()[0], 2)
