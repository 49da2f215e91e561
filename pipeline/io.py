"""Files and model directories on disk: atomic writes, directory kinds, the model-directory format.

Every output is written to a temporary path beside its target and renamed into place, so a
reader never sees a half-written file or directory, and an interrupted write leaves the previous
output intact.

Each output directory has a **kind**. A model directory records it in ``config.json``
(``"kind": "encoder"``), a pretraining run in ``run.json``; the data directories are recognised by
what they hold (:func:`directory_kind`). An existing directory is only replaced by
an output of the same kind: a mistyped ``--out`` never deletes an encoder, a task model or data.

A model directory (every kind of saved weights: the pretrained biLM, a checkpoint, an exported
encoder, a task model) is ``config.json`` + ``model.safetensors`` + side files of its own;
:func:`write_model_dir` writes one, :func:`read_model_config` and :func:`read_weights` read it.
Loading never unpickles code.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import PipelineError, is_disk_full

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# kind → how messages name it
KINDS = {
    "bilm": "a saved biLM (pretrain best/)",
    "checkpoint": "a pretraining checkpoint",
    "finetune-checkpoint": "a finetuning checkpoint",
    "pretrain-run": "a pretraining output directory (best/ and checkpoints/)",
    "encoder": "an exported encoder",
    "task-model": "a finetuned task model",
    "prepared-data": "prepared data (the prepare stage's output)",
    "word2vec": "word2vec vectors (the word2vec stage's output)",
    "plots": "a plots directory",
    "elmo-weights": "ELMo weight files (options.json + weights.hdf5 of `elmo export --format elmo`)",
}


# --- directory kinds ---------------------------------------------------------------------------


def _json_of(file: Path) -> dict | None:
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _config_of(path: Path) -> dict | None:
    return _json_of(path / CONFIG_FILE)


def directory_kind(path: str | os.PathLike) -> str | None:
    """The kind of output ``path`` holds (a key of :data:`KINDS`), or None for anything else.

    Model directories record it in ``config.json``, a pretraining run in ``run.json``; the data
    directories are recognised by their files: prepared data by ``meta.json`` + ``vocab.txt``,
    word2vec by ``embeddings.json``, ELMo weight files of ``elmo export --format elmo`` by
    ``weights.hdf5`` + the mark in ``options.json``.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    for recorded in (path / CONFIG_FILE, path / "run.json"):
        kind = (_json_of(recorded) or {}).get("kind")
        if recorded.is_file():
            return kind if kind in KINDS else None
    if (path / "meta.json").is_file() and (path / "vocab.txt").is_file():
        return "prepared-data"
    if (path / "embeddings.json").is_file():
        return "word2vec"
    if (path / "weights.hdf5").is_file() and "elmo_pipeline" in (_json_of(path / "options.json") or {}):
        return "elmo-weights"  # written by `elmo export --format elmo` (marked in options.json), not downloaded
    return None


def describe(path: Path) -> str:
    kind = directory_kind(path)
    return KINDS[kind] if kind else "files that are not this pipeline's output"


def check_replaceable(path: str | os.PathLike, kind: str | None = None) -> None:
    """Raise unless ``path`` may be (re)written with an output of ``kind`` (None: a single file).

    Call it before long work, so a bad output path fails at once. A missing path or an empty
    directory is always fine; a directory is replaced only when it holds the same kind.
    """
    path = Path(path)
    if not (path.is_dir() and not path.is_symlink()):
        if kind is not None and path.exists():
            raise PipelineError(f"{path}: is a file, not a directory; refusing to replace it")
        return
    if kind is None:
        raise PipelineError(f"{path}: is a directory; give a file path")
    if not any(path.iterdir()) or directory_kind(path) == kind:
        return
    raise PipelineError(
        f"{path}: holds {describe(path)}; refusing to replace it with {KINDS[kind]}: "
        f"choose another path or remove it first"
    )


def check_plots_dir(path: str | os.PathLike, names: tuple[str, ...]) -> None:
    """A plots directory may hold only the files the command writes itself (``names``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PipelineError(f"{path}: is a file; --plots needs a directory")
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in names)
        if others:
            raise PipelineError(
                f"{path}: holds other files ({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}); "
                f"a plots directory may hold only {', '.join(names)}: choose another path"
            )


def check_output_file(path: str | os.PathLike, is_ours: Callable[[Path], bool], what: str) -> None:
    """An existing file at ``path`` is replaced only if ``is_ours(path)``: it looks like ``what``
    (the output this command writes), so an input or an unrelated file is never overwritten."""
    path = Path(path)
    check_replaceable(path)
    if path.exists() and not is_ours(path):
        raise PipelineError(
            f"{path}: exists and is not {what}; refusing to replace it: choose another path or remove it first"
        )


def is_json(path: Path) -> bool:
    """True for a file that parses as JSON (e.g. an earlier results file of a script)."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


# Every JSON and text output carries this mark, so a later run replaces only files it wrote itself
# (never a model's config.json, a package.json or a corpus given by mistake as --metrics/--report).
MARK_KEY, MARK = "written_by", "elmo-pipeline"
TEXT_MARK = f"# {MARK}"


def is_marked_json(path: Path) -> bool:
    """True for a JSON object this pipeline wrote (it has ``"written_by": "elmo-pipeline"``)."""
    obj = _json_of(path)
    return obj is not None and obj.get(MARK_KEY) == MARK


def is_marked_text(path: Path) -> bool:
    """True for a text output this pipeline wrote (its first line starts with ``# elmo-pipeline``)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(TEXT_MARK)
    except (OSError, ValueError):
        return False


def unmarked(obj: dict) -> dict:
    """A JSON output as read back, without the mark."""
    return {k: v for k, v in obj.items() if k != MARK_KEY}


def check_run_paths(outputs: dict[str, str | os.PathLike | None], inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse, before any work, output paths that would destroy what the run reads or another output.

    ``outputs``/``inputs``: option name → path (None: not given). An output may not be an input,
    lie inside an input directory or hold an input; two outputs may not share a path; and no output
    may lie inside a directory the pipeline wrote (a model, prepared data, word2vec vectors: those
    are written and replaced whole)."""
    ins = {flag: Path(p) for flag, p in inputs.items() if p and Path(p).exists()}
    seen: dict[Path, str] = {}
    for flag, out in ((f, Path(p)) for f, p in outputs.items() if p):
        real = out.resolve()
        if real in seen:
            raise PipelineError(f"{out}: given as both {seen[real]} and {flag}; give each output its own path")
        seen[real] = flag
        for in_flag, inp in ins.items():
            in_real = inp.resolve()
            if real == in_real or in_real in real.parents or real in in_real.parents:
                what = "is" if real == in_real else "lies inside" if in_real in real.parents else "holds"
                raise PipelineError(
                    f"{out}: {what} the run's input {inp} ({in_flag}); refusing to write {flag} "
                    f"there: choose another path"
                )
        nearest = next(p for p in real.parents if p.exists())
        if nearest.is_dir() and not os.access(nearest, os.W_OK):  # a read-only file system, or not ours
            raise PipelineError(
                f"{out}: cannot write in {nearest} (read-only or no permission); choose another path for {flag}"
            )
        for parent in real.parents:
            if parent.exists() and not parent.is_dir():
                raise PipelineError(f"{out}: {parent} is a file, not a directory; choose another path for {flag}")
            kind = directory_kind(parent)
            if kind not in (None, "pretrain-run"):  # a pretraining run replaces only its best/ and checkpoints/
                raise PipelineError(
                    f"{out}: lies inside {parent}, {KINDS[kind]}, which the pipeline writes "
                    f"whole; refusing to write {flag} there: choose a path outside it"
                )


# the `elmo` subcommands' positional arguments (every other name is an option, --name)
POSITIONAL_ARGS = {"input", "text", "source", "file", "checkpoint", "vectors", "options", "weights", "out_dir"}


def check_arg_outputs(
    args,
    outputs: tuple[str, ...] = (
        "out",
        "out_dir",
        "metrics",
        "details",
        "json",
        "report",
        "plots",
        "output",
        "work_dir",
        "checkpoint_dir",
    ),
    inputs: tuple[str, ...] = (
        "input",
        "text",
        "source",
        "file",
        "checkpoint",
        "model",
        "encoder",
        "prepared",
        "train",
        "dev",
        "test",
        "vectors",
        "options",
        "weights",
        "word2vec",
        "params",
        "test_metrics",
        "wordsim",
        "simlex",
    ),
) -> None:
    """:func:`check_run_paths` over an argparse namespace's output and input options (those it has),
    then the JSON/text outputs that exist must carry our mark. Entry points call it before any work."""

    def named(names):  # how the user wrote it: --metrics for an option, OUT_DIR for a positional argument
        return {
            (n.upper() if n in POSITIONAL_ARGS else "--" + n.replace("_", "-")): getattr(args, n)
            for n in names
            if isinstance(getattr(args, n, None), (str, os.PathLike))
        }

    check_run_paths(named(outputs), named(inputs))
    for name, is_ours, what in (
        ("metrics", is_marked_json, "a JSON output of elmo-pipeline"),
        ("json", is_marked_json, "a JSON output of elmo-pipeline"),
        ("report", is_marked_text, "a text report of elmo-pipeline"),
    ):
        if isinstance(getattr(args, name, None), str):
            check_output_file(getattr(args, name), is_ours, what)  # before any work, not after it


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Works for files and directories (whatever the body creates at the yielded path). On an
    exception the temporary is removed and ``path`` is left as it was. An existing directory is
    replaced only when :func:`check_replaceable` allows it for ``kind``.
    """
    path = Path(path)
    check_replaceable(path, kind)
    with disk_full_names(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / ("out" + suffix)
    try:
        with disk_full_names(path):
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


def remove_stale_temporaries(directory: Path, name: str = "") -> list[str]:
    """Remove the temporaries :func:`atomic_path` leaves when its process is killed (``.NAME.*.tmp``,
    ``.NAME.*.old``) directly in ``directory`` (only those of output ``name``, when given); call it only
    while holding the output lock of ``directory`` (or of ``directory/name``), so no live writer owns
    them. Returns the names removed."""
    removed = []
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(f".{name}." if name else ".") and p.name.endswith((".tmp", ".old")) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    return sorted(removed)


@contextmanager
def disk_full_names(path: Path) -> Iterator[None]:
    """A full disk while writing ``path`` becomes one line naming it (the previous output is intact)."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise PipelineError(
            f"{path}: no space left on the device while writing it; the previous "
            f"{path.name} (if any) is intact: free some space and run again"
        ) from None


# --- one run per output -----------------------------------------------------------------------


def lock_file(path: str | os.PathLike) -> Path:
    """The lock of an output: beside it, not inside (directories are replaced whole)."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _lock_holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``path``'s lock while a run writes it: a second run on the same output is refused with
    one line naming the holder's PID; a lock left by a process that is gone is taken over. The same
    process may take it again (nested library calls); the lock file is removed when the run ends."""
    path, lock = Path(path), lock_file(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is None:  # perhaps created a moment ago, its PID not yet written
                time.sleep(0.2)
                holder = _lock_holder(lock)
            if holder == me:
                yield
                return
            if holder is not None and _pid_alive(holder):
                raise PipelineError(
                    f"{path}: another run is writing it (PID {holder}; lock {lock}); wait for it to end, or stop it"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone (or the file is half-written)
            continue
        try:
            with disk_full_names(path), os.fdopen(fd, "w") as f:
                f.write(f"{me}\n")
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        break
    else:
        raise PipelineError(f"{path}: could not take the lock {lock}")
    try:
        yield
    finally:
        if _lock_holder(lock) == me:
            lock.unlink(missing_ok=True)


# --- text and JSON files -----------------------------------------------------------------------


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


def read_json_output(path: str | os.PathLike, what: str) -> dict:
    """A JSON object written by this pipeline (e.g. evaluate_lm's metrics), without its mark;
    a missing, damaged or non-object file is a one-line error."""
    try:
        obj = json.loads(read_text(path, what))
    except ValueError as e:
        raise PipelineError(f"{path}: {what} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise PipelineError(f"{path}: {what} is not a JSON object")
    return unmarked(obj)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: dict, is_ours: Callable[[Path], bool] = is_marked_json) -> None:
    """Write (or replace) a JSON output, marked as ours; an existing file is replaced only when
    ``is_ours`` (by default: it carries the mark, i.e. this pipeline wrote it)."""
    check_output_file(path, is_ours, "a JSON output of elmo-pipeline")
    write_text_atomic(path, json.dumps({MARK_KEY: MARK, **obj}, indent=2, sort_keys=False) + "\n")


def write_report_atomic(path: str | os.PathLike, title: str, text: str) -> None:
    """Write (or replace) a text report whose first line is ``# elmo-pipeline: TITLE``; an existing
    file is replaced only when it carries that mark."""
    check_output_file(path, is_marked_text, "a text report of elmo-pipeline")
    write_text_atomic(path, f"{TEXT_MARK}: {title}\n{text}")


def write_json(path: Path, obj) -> None:
    """Write JSON inside a directory that is being built (already atomic as a whole)."""
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


class PlotTable:
    """An append-only TSV (a DVC plot), one row per call of :meth:`add`, flushed at once so
    plots are live. ``keep_until``: on resume, keep the rows whose first column is ≤ it; else
    the table starts empty."""

    def __init__(self, path: str | os.PathLike, cols: list[str], keep_until: int | None = None):
        self.path, self.cols = Path(path), cols
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if keep_until is not None and self.path.is_file():
            lines = self.path.read_text(encoding="utf-8").split("\n")
            rows = [r for r in lines[1:] if r and int(r.split("\t")[0]) <= keep_until]
        write_text_atomic(self.path, "\t".join(cols) + "\n" + "".join(r + "\n" for r in rows))

    def add(self, **row) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\t".join(_fmt(row[c]) for c in self.cols) + "\n")


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _program() -> list[str]:
    """How the running program was started: ``elmo`` for the entry point, ``python stages/x.py``."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return ["python", argv0] if argv0.endswith(".py") else [os.path.basename(argv0)]


def run_record() -> dict:
    """When (UTC date; ``$SOURCE_DATE_EPOCH`` if set, for reproducible builds) and by which command
    a model was made."""
    when = float(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    return {
        "date": time.strftime("%Y-%m-%d", time.gmtime(when)),
        "command": shlex.join([*_program(), *sys.argv[1:]]),
    }


# --- model directories -------------------------------------------------------------------------


def state_dict_cpu(module, skip_prefixes: tuple[str, ...] = ()) -> dict:
    """A module's state as contiguous CPU tensors (what safetensors writes), minus ``skip_prefixes``."""
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if not k.startswith(skip_prefixes)}


def write_model_dir(
    path: str | os.PathLike, kind: str, config: dict, tensors: dict, side_files: Callable[[Path], None] | None = None
) -> None:
    """Write ``config.json`` (with ``kind``), ``model.safetensors`` and ``side_files(tmp_dir)``
    as one directory, atomically; ``path`` is replaced only if it holds the same kind."""
    from safetensors.torch import save_file

    with atomic_path(path, kind=kind) as tmp:
        tmp.mkdir()
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        write_json(tmp / CONFIG_FILE, {"kind": kind, **{k: v for k, v in config.items() if k != "kind"}})
        if side_files is not None:
            side_files(tmp)


def read_model_config(path: str | os.PathLike, kind: str, format_version: int | None = None, hint: str = "") -> dict:
    """``config.json`` of a model directory of ``kind``; anything else is a one-line error.

    ``format_version``: the newest version this code reads (the directory's must not be newer).
    """
    d = Path(path)
    if not d.is_dir():
        raise PipelineError(f"{d}: directory not found (expected {KINDS[kind]}){hint}")
    found = directory_kind(d)
    if found != kind:
        what = (
            KINDS[found]
            if found
            else ("no config.json" if not (d / CONFIG_FILE).is_file() else "an unknown config.json")
        )
        raise PipelineError(f"{d}: not {KINDS[kind]} (it holds {what}){hint}")
    cfg_file = d / CONFIG_FILE
    config = _config_of(d)
    if config is None:
        raise PipelineError(f"{cfg_file}: not a valid JSON object")
    version = config.get("format_version")
    if format_version is not None:
        if not isinstance(version, int):
            raise PipelineError(f"{cfg_file}: no integer format_version: not {KINDS[kind]}")
        if version > format_version:
            raise PipelineError(
                f"{cfg_file}: format version {version} is newer than this code "
                f"({format_version}); upgrade elmo-pipeline"
            )
    return config


def read_weights(path: str | os.PathLike, device: str = "cpu") -> dict:
    """The tensors of ``path/model.safetensors`` (or a .safetensors file); a one-line error if unreadable."""
    from safetensors.torch import load_file

    f = Path(path)
    f = f / WEIGHTS_FILE if f.is_dir() else f
    if not f.is_file():
        raise PipelineError(f"{f}: weights file not found")
    try:
        state = load_file(str(f), device=device)
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise PipelineError(f"{f}: cannot read weights ({e})") from None
    for name, t in state.items():  # NaN weights would give NaN vectors and scores with exit 0
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise PipelineError(f"{f}: {name} holds NaN or infinite values; the weights are damaged")
    return state


def check_weights(file: str | os.PathLike, state: dict, expected: dict) -> None:
    """``state`` must have exactly the names and shapes of ``expected`` (name → tensor or shape)."""
    if set(state) != set(expected):
        extra, lost = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise PipelineError(f"{file}: weights do not match config.json (missing {lost[:3]}, unexpected {extra[:3]})")
    for k, want in expected.items():
        shape = tuple(getattr(want, "shape", want))
        if tuple(state[k].shape) != shape:
            raise PipelineError(f"{file}: {k} has shape {tuple(state[k].shape)}, config.json implies {shape}")
