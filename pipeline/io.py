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
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
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


# --- standard streams and what a path is ------------------------------------------------------

STDIO = "-"  # standard input where a command reads text, standard output where it writes text or JSON


def is_stdio(path: str | os.PathLike | None) -> bool:
    return path is not None and str(path) == STDIO


def check_not_special(path: str | os.PathLike, what: str = "file", stdin_ok: bool = False) -> None:
    """Refuse, before anything opens it, a path that is a pipe, a device or a socket: reading one
    may wait forever or never end. ``stdin_ok``: the argument takes ``-`` for standard input (said
    in the message, e.g. for ``/dev/stdin`` on a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the reader's own error names it
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    hint = "; give - to read standard input" if stdin_ok else "; give a file"
    raise PipelineError(f"{path}: {what} is not a regular file (a pipe, a device or a socket){hint}")


def standard_stream(name: str):
    """``sys.stdin.buffer`` or ``sys.stdout``; a closed one (``<&-``, a service without it) is a one-line error."""
    stream = getattr(sys, name)
    if stream is None:
        raise PipelineError(f"standard {name[3:]}put is closed; give a file path instead")
    return stream.buffer if name == "stdin" else stream


# --- directory kinds ---------------------------------------------------------------------------


def _json_of(file: Path) -> dict | None:
    if not file.is_file():  # missing, or a pipe that would never answer
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
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


def check_replaceable(path: str | os.PathLike, kind: str | None = None, own: Collection[str] = ()) -> None:
    """Raise unless ``path`` may be (re)written with an output of ``kind`` (None: a single file).

    Call it before long work, so a bad output path fails at once. A missing path or an empty
    directory is always fine; a directory is replaced only when it holds the same kind, and, where
    ``own`` lists every name such a directory may hold, nothing else (a user's notes, a .git).
    """
    path = Path(path)
    if not (path.is_dir() and not path.is_symlink()):
        if kind is not None and path.exists():
            raise PipelineError(f"{path}: is a file, not a directory; refusing to replace it")
        return
    if kind is None:
        raise PipelineError(f"{path}: is a directory; give a file path")
    if not any(path.iterdir()):
        return
    if directory_kind(path) == kind:
        others = sorted(p.name for p in path.iterdir() if own and p.name not in own)
        if others:
            raise PipelineError(
                f"{path}: holds files {KINDS[kind]} does not write ({', '.join(others[:3])}); it is replaced "
                f"whole: move them out, or choose another path"
            )
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


def check_new_file(path: str | os.PathLike, why: str, instead: str) -> None:
    """An output that is never replaced (``why``): refuse a path that exists, saying what to do ``instead``."""
    path = Path(path)
    check_replaceable(path)
    if path.exists() or path.is_symlink():
        raise PipelineError(f"{path}: exists; {why}: remove it first, choose another path, or {instead}")


def is_json(path: Path) -> bool:
    """True for a file that parses as JSON (e.g. an earlier results file of a script)."""
    if not path.is_file():
        return False
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError, RecursionError):
        return False


# Every JSON and text output carries a mark naming its kind, so a later run replaces only a file
# of the kind it writes: never a model's config.json, a package.json or a corpus given by mistake
# as --metrics/--report, and never another command's output (`elmo evaluate --metrics` over the
# stage's metrics/finetune_ner.json). Files marked before kinds were recorded count as any kind.
MARK_KEY, MARK, KIND_KEY = "written_by", "elmo-pipeline", "output"
TEXT_MARK = f"# {MARK}"
JSON_KINDS = {  # kind → what it is, in messages
    "prepare statistics": "the statistics of `elmo prepare` / the prepare stage",
    "word2vec scores": "the intrinsic scores of the word2vec stage",
    "pretrain summary": "the training summary of the pretrain stage",
    "perplexities": "the perplexities of `elmo evaluate-lm` / the evaluate_lm stage",
    "word2vec evaluation": "the scores of `elmo word2vec-eval --json`",
    "lm scores": "the perplexities of `elmo lm-score --json`",
    "finetune scores": "the scores and history of `elmo finetune --metrics` / a finetune stage's --details",
    "finetune summary": "the headline numbers of a finetune stage (its --metrics)",
    "evaluate scores": "the scores of `elmo evaluate --metrics`",
    "baseline scores": "the scores of scripts/baselines.py",
    "results": "a results file of a script in scripts/",
}
NEIGHBOURS_REPORT = "word2vec nearest neighbours"
SUMMARY_REPORT = "headline numbers of the pipeline's stages (elmo report)"
TEXT_KINDS = (NEIGHBOURS_REPORT, SUMMARY_REPORT)


def marked_json_of(kind: str) -> Callable[[Path], bool]:
    """Whether a file is a JSON output of ``kind`` (see :data:`JSON_KINDS`) this pipeline wrote."""

    def is_ours(path: Path) -> bool:
        obj = _json_of(path)
        return obj is not None and obj.get(MARK_KEY) == MARK and obj.get(KIND_KEY, kind) == kind

    return is_ours


def marked_text_of(kind: str) -> Callable[[Path], bool]:
    """Whether a file is a text output of ``kind`` (its first line ``# elmo-pipeline: KIND``)."""

    def is_ours(path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\n") == f"{TEXT_MARK}: {kind}"
        except (OSError, ValueError):
            return False

    return is_ours


def output_check(kind: str) -> tuple[Callable[[Path], bool], str]:
    """(is an existing file ours to replace, what it must be) for a JSON or text output of ``kind``."""
    if kind in TEXT_KINDS:
        return marked_text_of(kind), f"a text output of elmo-pipeline ({kind})"
    return marked_json_of(kind), f"{JSON_KINDS[kind]} (a JSON output of elmo-pipeline)"


def unmarked(obj: dict) -> dict:
    """A JSON output as read back, without the mark."""
    return {k: v for k, v in obj.items() if k not in (MARK_KEY, KIND_KEY)}


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
        for other, other_flag in seen.items():
            if other in real.parents or real in other.parents:
                inner, outer = (flag, other_flag) if other in real.parents else (other_flag, flag)
                raise PipelineError(f"{out}: {inner} lies inside {outer}; give each output its own path")
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
    then each JSON/text output that exists must be one of the kind its option writes
    (``args.output_kinds``: option → kind, set by each command's parser). Entry points call it
    before any work. ``-`` (a standard stream) is no path."""

    def flag(name: str) -> str:  # how the user wrote it: --metrics for an option, OUT_DIR for a positional argument
        return name.upper() if name in POSITIONAL_ARGS else "--" + name.replace("_", "-")

    def named(names):
        return {
            flag(n): getattr(args, n)
            for n in names
            if isinstance(getattr(args, n, None), (str, os.PathLike)) and not is_stdio(getattr(args, n))
        }

    kinds = getattr(args, "output_kinds", {})
    for name in (*outputs, *inputs):
        if getattr(args, name, None) == "":
            raise PipelineError(f"{flag(name)} '': an empty path; give a file or directory")
    for name in outputs:  # `-` is standard output only for what can stream there (text, JSON, JSONL)
        if is_stdio(getattr(args, name, None)) and name not in kinds and name != "output":
            raise PipelineError(f"{flag(name)} -: standard output takes only a text or JSON output; give a path")
    check_run_paths(named(outputs), named(inputs))
    for name, kind in kinds.items():
        path = getattr(args, name, None)
        if isinstance(path, str) and not is_stdio(path):
            check_output_file(path, *output_check(kind))  # before any work, not after it


@contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", kind: str | None = None, own: Collection[str] = ()
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Works for files and directories (whatever the body creates at the yielded path). On an
    exception the temporary is removed and ``path`` is left as it was. An existing directory is
    replaced only when :func:`check_replaceable` allows it for ``kind`` (and ``own``).
    """
    path = Path(path)
    check_replaceable(path, kind, own)
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
    check_not_special(path, what)
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
    except (ValueError, RecursionError) as e:
        raise PipelineError(f"{path}: {what} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise PipelineError(f"{path}: {what} is not a JSON object")
    return unmarked(obj)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:  # a lone surrogate (from an edited JSON file) is written escaped
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def write_json_atomic(
    path: str | os.PathLike, obj: dict, kind: str, is_ours: Callable[[Path], bool] | None = None
) -> None:
    """Write (or replace) a JSON output marked with its ``kind`` (a key of :data:`JSON_KINDS`); an
    existing file is replaced only when it is an output of the same kind (or when ``is_ours`` says
    so). ``-`` writes it to standard output."""
    text = json.dumps({MARK_KEY: MARK, KIND_KEY: kind, **obj}, indent=2, sort_keys=False) + "\n"
    if is_stdio(path):
        standard_stream("stdout").write(text)
        return
    ours, what = output_check(kind)
    check_output_file(path, is_ours or ours, what)
    write_text_atomic(path, text)


def write_report_atomic(path: str | os.PathLike, kind: str, text: str) -> None:
    """Write (or replace) a text output whose first line is ``# elmo-pipeline: KIND`` (one of
    :data:`TEXT_KINDS`); an existing file is replaced only when it has that first line. ``-``
    writes it to standard output."""
    text = f"{TEXT_MARK}: {kind}\n{text}"
    if is_stdio(path):
        standard_stream("stdout").write(text)
        return
    check_output_file(path, *output_check(kind))
    write_text_atomic(path, text)


def write_option_output(args, name: str, content: dict | str) -> None:
    """Write the output of option ``name`` (a dict as JSON, a str as text) as the kind its parser
    declared in ``args.output_kinds``: the kind checked before the work is the kind written."""
    kind, path = args.output_kinds[name], getattr(args, name)
    if isinstance(content, str):
        write_report_atomic(path, kind, content)
    else:
        write_json_atomic(path, content, kind)


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
    path: str | os.PathLike,
    kind: str,
    config: dict,
    tensors: dict,
    side_files: Callable[[Path], None] | None = None,
    own: Collection[str] = (),
) -> None:
    """Write ``config.json`` (with ``kind``), ``model.safetensors`` and ``side_files(tmp_dir)``
    as one directory, atomically; ``path`` is replaced only if it holds the same kind (and, where
    ``own`` lists the names such a directory may hold, nothing else)."""
    from safetensors.torch import save_file

    with atomic_path(path, kind=kind, own=own) as tmp:
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
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PipelineError(f"{cfg_file}: no format_version of 1 or more: not {KINDS[kind]}")
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
