"""Atomic writes: a reader never sees a half-written file or directory."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.errors import PipelineError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Works for files and directories (whatever the body creates at the yielded path).
    On an exception the temporary is removed and ``path`` is left as it was.
    An existing directory at ``path`` is replaced only if it is empty or holds ``marker`` (a file
    every output of this kind has): a mistyped output path never deletes an unrelated directory.
    """
    path = Path(path)
    check_replaceable(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / ("out" + suffix)
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"atomic_path body did not create {target}")
        if path.is_dir() and not path.is_symlink():
            # A directory cannot be replaced by rename in one step: move the old one aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "out")
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(path: str | os.PathLike, marker: str | None = None) -> None:
    """Raise unless ``path`` may be (re)written by :func:`atomic_path` with this ``marker``
    (call it before long work, so a bad output path fails at once)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        if marker is None:
            raise PipelineError(f"{path}: is a directory; give a file path")
        if any(path.iterdir()) and not (path / marker).exists():
            raise PipelineError(f"{path}: exists and is not an output of this kind (no {marker} in it); "
                                f"refusing to replace it: choose another path or remove it first")


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file is a one-line error."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: {what} is not UTF-8 text ({e})") from None
    except OSError as e:  # a directory, no permission, ...
        raise PipelineError(f"{path}: cannot read {what}: {e.strerror or e}") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
