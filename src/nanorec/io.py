"""Atomic artifact writers: every file is written beside its target, then renamed.

A stage that dies half-way therefore leaves either the previous artifact or none,
never a truncated Parquet or JSON file that a later stage would read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nanorec.errors import OutputError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success.

    The parent folder is created when missing. On any exception the temporary file
    is removed and `path` keeps its previous content.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise _output_error(path, err) from err
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file private (0600); give it the usual umask mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in _STORAGE_ERRORS:
            raise _output_error(path, err) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _output_error(path: Path, err: OSError) -> OutputError:
    reason = err.strerror or str(err)
    return OutputError(
        f"cannot write {path}: {reason}. Free disk space or point the output at a "
        "writable folder; any previous version of the file is unchanged."
    )


def write_parquet(table: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write a DataFrame or Arrow table to Parquet atomically."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    logger.info("wrote %s (%d rows)", path, table.num_rows)


def write_json(data: Any, path: Path) -> None:
    """Write JSON atomically, indented and key-sorted for readable diffs."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file, naming the file in the error when it is malformed."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
