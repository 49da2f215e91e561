"""The pipeline's headline numbers in a few lines, read from the stages' metrics files
(``elmo report``; the last DVC stage writes it to reports/summary.txt and `make repro` prints it)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io import SUMMARY_REPORT, check_not_special, write_report_atomic
from pipeline.plots import printable


class StageMetrics:
    """One stage's metrics file, read defensively: the fields a line shows are checked as they are
    read, so a file of the right name and the wrong content is one line naming file and field."""

    def __init__(self, path: Path):
        self.path = path
        check_not_special(path, "metrics file")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise PipelineError(f"{path}: not UTF-8 text: not a metrics file of the pipeline") from None
        except (ValueError, RecursionError) as e:
            raise PipelineError(f"{path}: not valid JSON ({e}): not a metrics file of the pipeline") from None
        except OSError as e:
            raise PipelineError(f"{path}: cannot read it ({e.strerror or e})") from None
        if not isinstance(data, dict):
            raise PipelineError(
                f"{path}: a JSON {type(data).__name__}, not an object: not a metrics file of the pipeline"
            )
        self.data = data

    def get(self, key: str, kinds: tuple[type, ...]) -> Any:
        value = self.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise PipelineError(f"{self.path}: {key}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
        return value

    def num(self, key: str, fmt: str = ".2f") -> str:
        value = self.get(key, (int, float))
        if value is None:
            return "?"
        if not math.isfinite(value):
            raise PipelineError(f"{self.path}: {key}: expected a finite number, got {value!r}")
        return format(value, ".4g" if abs(value) >= 1e9 else fmt)  # never hundreds of digits

    def count(self, key: str) -> str:
        value = self.get(key, (int,))
        return "?" if value is None else f"{value:,}"

    def text(self, key: str) -> str:
        """A short field (a model name, a stop reason) as one printable line of at most 40 characters."""
        value = self.get(key, (str, int))
        return "?" if value is None else printable(str(value))

    def has(self, key: str) -> bool:
        return key in self.data


def _finetune_line(m: StageMetrics) -> str:
    metric = "f1" if m.has("dev_f1") else "accuracy"
    test = f"test {metric} {m.num(f'test_{metric}', '.4f')}, " if m.has(f"test_{metric}") else ""
    stopped = m.text("stopped_by")
    stop = f", stopped by {stopped}" if stopped != "?" else ""
    return (
        f"{test}dev {metric} {m.num(f'dev_{metric}', '.4f')} (model {m.text('model')}, "
        f"{m.count('train_examples')} training examples{stop})"
    )


LINES: dict[str, Callable[[StageMetrics], str]] = {
    "prepare": lambda m: (
        f"{m.count('train_sentences')} training sentences, {m.count('train_tokens')} tokens, "
        f"vocabulary {m.count('vocab_size')}"
    ),
    "word2vec": lambda m: (
        f"{m.count('vocab_size')} words; analogies {m.num('analogy_accuracy', '.1%')}, "
        f"WordSim-353 Spearman {m.num('wordsim353_spearman')}"
    ),
    "pretrain": lambda m: (
        f"{m.count('parameters')} parameters, {m.count('steps')} steps; best valid perplexity "
        f"{m.num('best_valid_average_ppl')} (step {m.count('best_step')}), stopped by {m.text('stopped_by')}"
    ),
    "evaluate_lm": lambda m: (
        f"test perplexity {m.num('test_average_ppl')} "
        f"(forward {m.num('test_forward_ppl')}, backward {m.num('test_backward_ppl')})"
    ),
    "finetune_ner": _finetune_line,
    "finetune_sentiment": _finetune_line,
}


def summary_lines(metrics_dir: str | Path = "metrics") -> list[str]:
    """One line per stage that has a metrics file; stages not run yet are left out."""
    d = Path(metrics_dir)
    width = max(len(s) for s in LINES)
    out = []
    for stage, line in LINES.items():
        path = d / f"{stage}.json"
        if path.exists():
            out.append(f"{stage:<{width}}  {line(StageMetrics(path))}")
    return out


def summary(metrics_dir: str | Path = "metrics", out: str | Path | None = None) -> str:
    """The summary text (refused when no stage has metrics yet); also written to ``out`` if given."""
    lines = summary_lines(metrics_dir)
    if not lines:
        raise PipelineError(f"{metrics_dir}: no metrics files of the pipeline's stages (run `dvc repro` first)")
    text = "\n".join(lines) + "\n"
    if out:
        write_report_atomic(out, SUMMARY_REPORT, text)
    return text
