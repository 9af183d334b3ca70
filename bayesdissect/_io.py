"""Small file helpers shared by every writer: atomic replacement of a file or a folder, so
a failed run never leaves a half-written result or overwrites an earlier one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bayesdissect.errors import BayesDissectError

#: The file that marks a folder as an earlier report, which a new report may replace.
REPORT_FILE = "report.html"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; it replaces ``path`` (an earlier folder
    there included) only when the block finishes without an error, else it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a result folder is meant to be shared
    try:
        yield tmp
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` folder onto ``target`` (an earlier folder is replaced
    only now, after everything was written; it is put back if the move fails)."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_out_dir(out_dir: str | os.PathLike[str], marker: str = REPORT_FILE) -> Path:
    """Raise unless ``out_dir`` is new, empty, or an earlier result folder (one holding
    ``marker``), so a result never replaces a folder of other files; call it before long
    work."""
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or (
            any(target.iterdir()) and not (target / marker).exists())):
        raise BayesDissectError(
            f"--out {target}: exists and is not an earlier report folder; expected a new or "
            f"empty folder, or one holding {marker} (it is replaced)")
    return target
