"""Atomic artifact writers, and readers that name the file they failed on.

Every file is written beside its target, then renamed. A stage that dies half-way
therefore leaves either the previous artifact or none, never a truncated Parquet or
JSON file that a later stage would read.
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

from nanorec.errors import InputError, OutputError

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
        if err.errno in _STORAGE_ERRORS or err.errno == errno.EISDIR:
            raise _output_error(path, err) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _output_error(path: Path, err: OSError) -> OutputError:
    # mkdir raises EEXIST or ENOTDIR when a plain file sits where a folder of the
    # output path should be, and os.replace raises EISDIR when the target is a folder.
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = _find_file_in_the_way(path)
        return OutputError(
            f"cannot write {path}: {blocker} is a file, not a folder. Point the "
            f"output at a folder, or move {blocker} away; it was left unchanged."
        )
    if err.errno == errno.EISDIR:
        return OutputError(
            f"cannot write {path}: it is a folder, not a file. Point the output "
            "at a file path, or move the folder away; it was left unchanged."
        )
    reason = err.strerror or str(err)
    return OutputError(
        f"cannot write {path}: {reason}. Free disk space or point the output at a "
        "writable folder; any previous version of the file is unchanged."
    )


def _find_file_in_the_way(path: Path) -> Path:
    """Return the ancestor of `path` nearest the root that exists but is no folder."""
    for ancestor in reversed(path.parents):
        if ancestor.exists() and not ancestor.is_dir():
            return ancestor
    return path.parent


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


def relative_to_cwd(path: Path) -> str:
    """Return " (relative to the current folder CWD)" for a relative path, else ""."""
    if Path(path).is_absolute():
        return ""
    return f" (relative to the current folder {Path.cwd()})"


def read_json(path: Path) -> Any:
    """Read a JSON file; raise InputError naming the file when it is malformed."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from err


def read_parquet(path: Path, advice: str) -> pd.DataFrame:
    """Read a Parquet file into a DataFrame, as `pd.read_parquet` does.

    Raises:
        InputError: the file is unreadable or not Parquet. The message names the
            file and ends with `advice`, e.g. "rerun the ingest stage".
    """
    with _parquet_read_errors(path, advice):
        return pd.read_parquet(path)


def read_parquet_table(path: Path, advice: str) -> pa.Table:
    """Read a Parquet file into an Arrow table; errors as for `read_parquet`."""
    with _parquet_read_errors(path, advice):
        return pq.read_table(path)


@contextlib.contextmanager
def _parquet_read_errors(path: Path, advice: str) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        raise InputError(f"cannot read {path}: {reason}. {advice}") from err
    except pa.ArrowException as err:
        raise InputError(
            f"{path} is not a valid Parquet file ({err}). {advice}"
        ) from err
