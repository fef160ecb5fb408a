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


# Runs argv[2:] in a child of its own and writes that child's peak resident
# memory (KiB) into the file argv[1]. Linux carries ru_maxrss across exec, and
# subprocess starts children with vfork, so a stage started straight from this
# process would report at least this process's own peak (302 MiB measured for a
# parent that had imported torch). The launcher is small and uses a real fork.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_stage(name: str, params: Path, *args: str) -> dict:
    """Run one stage script as a child process.

    Returns:
        {"seconds": wall time, "peak_mib": the stage's peak resident memory}.

    Raises:
        RuntimeError: the stage exited non-zero; the message ends with its stderr.
    """
    cmd = [sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", str(params)]
    with (
        tempfile.TemporaryFile("w+") as stderr,
        tempfile.NamedTemporaryFile("r", suffix=".maxrss") as peak,
    ):
        start = time.perf_counter()
        returncode = subprocess.call(
            [sys.executable, "-c", _LAUNCHER, peak.name, *cmd, *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        seconds = time.perf_counter() - start
        stderr.seek(0)
        errors = stderr.read()
        peak_kib = int(peak.read() or 0)
    if returncode:
        raise RuntimeError(f"stage {name} failed:\n{errors[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_mib": round(peak_kib / 1024, 1)}


def load_average() -> float:
    """Return the 1-minute load average of the machine."""
    return round(os.getloadavg()[0], 2)
