"""Pictures of a plots directory, drawn offline (matplotlib, no display, no network): the curves of
every TSV table in it (``curves.png``) and a classifier's confusion matrix (``confusion.png``).

The pretrain stage and ``elmo finetune --plots DIR`` write them at the end of a run; ``elmo plot
DIR`` draws them for any plots directory, e.g. during a run. A PNG is replaced only when it is one
of ours (its ``Software`` text chunk names this project).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.io import atomic_path, check_not_special

CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
PNG_FILES = (CURVES_PNG, CONFUSION_PNG)
MARK = "elmo-pipeline"  # the PNG's Software text chunk
NOT_PLOTTED = {"step", "epoch", "elapsed_sec"}  # x axes and clocks, not curves
# bounds, so a table of many columns or a confusion of many labels draws in seconds (capped, with a note)
MAX_PANELS = 24
MAX_POINTS = 5_000  # per curve: longer curves are drawn from evenly spaced rows
MAX_LABELS = 30  # confusion: the most frequent gold labels


def read_table(path: Path) -> tuple[list[str], list[list[float]]]:
    """(column names, rows of numbers) of a TSV curve table; rows that are not numbers are skipped."""
    check_not_special(path, "curve table")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text: not a curve table (TSV) of the pipeline") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read the curve table ({e.strerror or e})") from None
    if not lines:
        return [], []
    cols, rows = lines[0].split("\t"), []
    for line in lines[1:]:
        try:
            row = [v if abs(v) <= 1e100 else math.nan for v in map(float, line.split("\t"))]  # no axis spans 1e308
        except ValueError:
            continue
        if len(row) == len(cols):
            rows.append(row)
    if not rows and len(lines) > 1:
        raise PipelineError(f"{path}: its rows are not numbers: not a curve table of the pipeline")
    if len(rows) > MAX_POINTS:
        rows = [rows[i * (len(rows) - 1) // (MAX_POINTS - 1)] for i in range(MAX_POINTS)]
    return cols, rows


def panels(directory: Path) -> list[tuple[str, str, dict[str, tuple[list[float], list[float]]]]]:
    """(title, x name, {curve name: (xs, ys)}) per panel: one panel per column of each table, the
    perplexity columns (``*_ppl``) of a table together."""
    out = []
    for path in sorted(p for p in directory.glob("*.tsv") if not p.is_dir()):
        cols, rows = read_table(path)
        if not rows:
            continue
        x = "step" if "step" in cols else cols[0]
        xs = [r[cols.index(x)] for r in rows]
        ys = {c: [r[i] for r in rows] for i, c in enumerate(cols) if c not in NOT_PLOTTED and c != x}
        ys = {c: v for c, v in ys.items() if len(v) == 1 or min(v) != max(v)}  # a constant (e.g. lr) says nothing
        grouped = {c: v for c, v in ys.items() if c.endswith("_ppl")}
        if grouped:
            out.append((f"{path.stem}: perplexity", x, {c: (xs, v) for c, v in grouped.items()}))
        out += [(f"{path.stem}: {c}", x, {c: (xs, v)}) for c, v in ys.items() if c not in grouped]
    return out


def is_ours(path: Path) -> bool:
    """A PNG we drew (its text chunks come before the pixels)."""
    with open(path, "rb") as f:
        return MARK.encode() in f.read(4096)


def _pyplot():
    """matplotlib's pyplot on the Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def printable(name: str, width: int = 40) -> str:
    """A label or column name as drawn: printable, at most ``width`` characters (a picture of a
    200,000-character label would never finish)."""
    text = "".join(c if c.isprintable() else "?" for c in name[: width + 1])  # lone surrogates are not printable
    return text if len(text) <= width else text[: width - 1] + "…"


def _save(fig, path: Path) -> Path:
    """Write ``fig`` as our PNG at ``path`` (only over a picture of ours) and close it."""
    try:
        if path.exists() and not (path.is_file() and is_ours(path)):
            raise PipelineError(f"{path}: exists and is not a picture elmo-pipeline drew; not replacing it")
        with atomic_path(path) as tmp:
            try:
                fig.savefig(tmp, format="png", dpi=100, metadata={"Software": MARK})
            except (ValueError, OverflowError) as e:  # e.g. values near 1e308: no axis can span them
                raise PipelineError(f"{path}: cannot draw these values ({e})") from None
    finally:
        _pyplot().close(fig)
    return path


def draw_curves(directory: Path) -> Path | None:
    """``curves.png`` of the TSV tables in ``directory`` (None when there is nothing to draw)."""
    plt = _pyplot()
    found = panels(directory)
    if not found:
        return None
    total = len(found)
    found = found[:MAX_PANELS]
    ncols = 2 if len(found) > 1 else 1
    nrows = (len(found) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (title, x, curves) in zip(axes.flat, found):
        for name, (xs, ys) in curves.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=printable(name))
        ax.set_title(printable(title, 60))
        ax.set_xlabel(printable(x))
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend()
    for ax in list(axes.flat)[len(found) :]:
        ax.axis("off")
    if total > len(found):
        fig.suptitle(f"the first {len(found)} of {total} curves (a picture shows at most {MAX_PANELS})")
    fig.tight_layout()
    return _save(fig, directory / CURVES_PNG)


def draw_confusion(directory: Path) -> Path | None:
    """``confusion.png`` of ``confusion.json`` (rows of {"actual", "predicted"}) if there is one."""
    source = directory / "confusion.json"
    if not source.is_file():
        return None
    try:
        rows = json.loads(source.read_bytes().decode("utf-8"))
        if not isinstance(rows, list):
            raise TypeError(f"a JSON {type(rows).__name__}, not a list of rows")
        pairs = [(str(r["actual"]), str(r["predicted"])) for r in rows]
    except (ValueError, TypeError, KeyError, OSError, RecursionError) as e:
        raise PipelineError(f"{source}: not a confusion table of `elmo finetune` ({e})") from None
    plt = _pyplot()
    gold = Counter(a for a, _ in pairs)
    every = sorted(set(gold) | {p for _, p in pairs})
    labels = every if len(every) <= MAX_LABELS else sorted(g for g, _ in gold.most_common(MAX_LABELS))
    cells = Counter(pairs)
    counts = [[cells[(g, p)] for p in labels] for g in labels]
    size = 1.6 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), [printable(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [printable(x) for x in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    top = max(max(row) for row in counts) if counts else 0
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
    fig.colorbar(image, ax=ax)
    shown = "" if len(labels) == len(every) else f"; the {len(labels)} most frequent of {len(every)} labels"
    ax.set_title(f"confusion ({len(pairs)} examples{shown})")
    fig.tight_layout()
    return _save(fig, directory / CONFUSION_PNG)


def draw_pictures(directory: str | Path) -> list[Path]:
    """Every picture of a plots directory; the paths written."""
    d = Path(directory)
    if not d.is_dir():
        raise PipelineError(f"{d}: not a directory (give a plots directory, e.g. plots/pretrain)")
    if not any(d.glob("*.tsv")) and not (d / "confusion.json").is_file():
        raise PipelineError(f"{d}: no curve tables (*.tsv) or confusion.json in it: not a plots directory")
    return [p for p in (draw_curves(d), draw_confusion(d)) if p is not None]
