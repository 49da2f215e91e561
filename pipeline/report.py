"""The pipeline's headline numbers in a few lines, read from the stages' metrics files
(``elmo report``; the last DVC stage writes it to reports/summary.txt and `make repro` prints it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io import write_report_atomic


def _read(metrics_dir: Path, stage: str) -> dict[str, Any] | None:
    path = metrics_dir / f"{stage}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _num(value: Any, fmt: str = ".2f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "?"


def _finetune_line(m: dict) -> str:
    metric = "f1" if "dev_f1" in m else "accuracy"
    test = f"test {metric} {_num(m.get(f'test_{metric}'), '.4f')}, " if f"test_{metric}" in m else ""
    stop = f", stopped by {m['stopped_by']}" if m.get("stopped_by") else ""
    return (
        f"{test}dev {metric} {_num(m.get(f'dev_{metric}'), '.4f')} (model {m.get('model', '?')}, "
        f"{m.get('train_examples', '?')} training examples{stop})"
    )


LINES = {
    "prepare": lambda m: (
        f"{m.get('train_sentences', 0):,} training sentences, {m.get('train_tokens', 0):,} tokens, "
        f"vocabulary {m.get('vocab_size', 0):,}"
    ),
    "word2vec": lambda m: (
        f"{m.get('vocab_size', 0):,} words; analogies {_num(m.get('analogy_accuracy'), '.1%')}, "
        f"WordSim-353 Spearman {_num(m.get('wordsim353_spearman'))}"
    ),
    "pretrain": lambda m: (
        f"{m.get('parameters', 0):,} parameters, {m.get('steps')} steps; best valid perplexity "
        f"{_num(m.get('best_valid_average_ppl'))} (step {m.get('best_step')}), stopped by {m.get('stopped_by', '?')}"
    ),
    "evaluate_lm": lambda m: (
        f"test perplexity {_num(m.get('test_average_ppl'))} "
        f"(forward {_num(m.get('test_forward_ppl'))}, backward {_num(m.get('test_backward_ppl'))})"
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
        m = _read(d, stage)
        if m is not None:
            out.append(f"{stage:<{width}}  {line(m)}")
    return out


def summary(metrics_dir: str | Path = "metrics", out: str | Path | None = None) -> str:
    """The summary text (refused when no stage has metrics yet); also written to ``out`` if given."""
    lines = summary_lines(metrics_dir)
    if not lines:
        raise PipelineError(f"{metrics_dir}: no metrics files of the pipeline's stages (run `dvc repro` first)")
    text = "\n".join(lines) + "\n"
    if out:
        write_report_atomic(out, "headline numbers of the pipeline's stages (elmo report)", text)
    return text
