"""ONNX export of a task model (``elmo export --format onnx MODEL_DIR OUT``): the model's directory
plus its graph (:mod:`pipeline.tasks.onnx`) as ``model.onnx`` and the report ``onnx.json``;
:func:`pipeline.tasks.models.load_task_model`, ``elmo predict``, ``elmo evaluate`` and
``elmo serve`` run it in ONNX Runtime.

- **Parity**: on the check examples (``--dev FILE``, else the model's own dev file when it is
  there, else ``--check-text`` or built-in sentences) the graph's outputs (probabilities, scores or
  tag scores) are compared with PyTorch's on every real position, and the decoded predictions too:
  the largest absolute difference and the label agreement (% of examples, of tokens for taggers)
  go into ``onnx.json`` and the card; over ``PARITY_TOLERANCE`` nothing is written.
- **int8** (``--int8``): ONNX Runtime's dynamic quantization; its dev score beside PyTorch's and the
  fp32 graph's and its speed are measured at export; refused, nothing written, when the dev score
  drops by more than ``--int8-max-drop`` (default :data:`pipeline.config.INT8_MAX_DROP`), or when
  there is no labelled dev file to measure it on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch

from pipeline.config import INT8_MAX_DROP
from pipeline.cpu import median_seconds
from pipeline.encoder import ONNX_FILE
from pipeline.errors import PipelineError
from pipeline.export_onnx import (
    PARITY_TOLERANCE,
    check_sentences,
    export_workspace,
    quantize,
    quiet,
    speed_fields,
    write_export,
)
from pipeline.io import check_not_special, check_replaceable
from pipeline.tasks.base import TASK_MODEL_KIND
from pipeline.tasks.bilstm import BiLSTMTaskModel
from pipeline.tasks.models import TASK_MODEL_FILES, load_task_model
from pipeline.tasks.onnx import (
    PAIR_SUFFIX,
    ExportedTaskModel,
    OnnxTaskModel,
    decoding_fields,
    graph_inputs,
    input_names,
)

MAX_CHECK_EXAMPLES = 2000  # parity and the dev score on at most this many dev examples
SPEED_EXAMPLES = 500  # the speed ratios on at most this many of them


def export_task_onnx(
    source: str | Path,
    out_dir: str | Path,
    int8: bool = False,
    int8_max_drop: float = INT8_MAX_DROP,
    dev: str | Path | None = None,
    check_text: str | Path | None = None,
    log=print,
) -> dict:
    """Write the ONNX export of the task model in ``source`` to ``out_dir``; returns the report."""
    source, out_dir = Path(source), Path(out_dir)
    if out_dir.absolute() == source.absolute():
        raise PipelineError(f"{out_dir}: the export would replace the model it reads: give another output directory")
    check_replaceable(out_dir, TASK_MODEL_KIND, TASK_MODEL_FILES)
    model = load_task_model(source, runtime="torch")
    if not isinstance(model, BiLSTMTaskModel):
        raise PipelineError(
            f"{source}: a {model.cfg.model} model has no ONNX export (a bilstm model has; TF-IDF and linear "
            "models are small scikit-learn-style models: run them with elmo predict)"
        )
    examples, targets, where = check_examples(model, dev, check_text)
    if int8 and targets is None:
        raise PipelineError(
            f"--int8 measures the dev score's change: give a labelled dev file with --dev (the model's own, "
            f"{model.cfg.data.dev}, is not there)"
        )
    with export_workspace(out_dir) as tmp:
        log(f"export: writing the ONNX graph of {source} ({model.cfg.task}, {model.describe()})")
        write_task_graph(model, tmp / "fp32.onnx")
        report = check_task_graphs(model, tmp, examples, targets, where, int8, int8_max_drop, log)
        write_export(out_dir, (TASK_MODEL_KIND, TASK_MODEL_FILES), source, tmp, report, task_onnx_card(report))
    return report


def check_examples(model: BiLSTMTaskModel, dev, check_text) -> tuple[list, list | None, str]:
    """(examples, their targets or None, where they come from): ``dev`` (a labelled file in the
    model's task format), else the model's own dev file if it is there, else sentences."""
    path = dev if dev is not None else model.cfg.data.dev
    if dev is not None or (path and Path(path).is_file()):
        check_not_special(Path(path), "the dev file")
        data = model.task.read(model.cfg, path, model.tokenize)
        n = min(len(data.sentences), MAX_CHECK_EXAMPLES)
        return list(data.sentences[:n]), list(data.targets[:n]), f"{path} ({n} examples)"
    sentences = [model.tokenize(s) for s in check_sentences(check_text)]
    if model.pairs:  # each sentence with the next one
        return list(zip(sentences, sentences[1:] + sentences[:1])), None, f"{len(sentences)} check pairs"
    return sentences, None, f"{len(sentences)} check sentences"


def write_task_graph(model: BiLSTMTaskModel, path: Path) -> None:
    """The model as an ONNX graph at ``path`` (dynamic batch, and length of each text)."""
    graph = ExportedTaskModel(model)
    first, second = [["A", "new", "film"], ["it", "rains"]], [["Nobody", "came", "to", "see"], ["why", "?"]]
    inputs = graph_inputs(model, list(zip(first, second)) if model.pairs else first)
    names = input_names(model)
    batch, length = torch.export.Dim("batch"), {False: torch.export.Dim("length"), True: torch.export.Dim("length2")}
    shapes = tuple(
        {0: batch} if n.startswith("lengths") else {0: batch, 1: length[n.endswith(PAIR_SUFFIX)]} for n in names
    )
    with quiet():
        torch.onnx.export(
            graph, tuple(torch.from_numpy(inputs[n]) for n in names), str(path), dynamo=True,
            input_names=names, output_names=[decoding_fields(model)["output"]], dynamic_shapes=(shapes,),
            external_data=False, verbose=False,
        )  # fmt: skip


def check_task_graphs(model, tmp: Path, examples, targets, where: str, int8: bool, max_drop: float, log) -> dict:
    """Parity of the fp32 graph with PyTorch (refused over :data:`PARITY_TOLERANCE`); with ``int8``
    the quantized graph's dev score (refused when it drops more than ``max_drop``); speeds. The report."""
    fp32 = OnnxTaskModel(model, tmp / "fp32.onnx")
    reference, ref_outputs = run_recording(model, model.outputs, examples)
    pred, outputs = run_recording(model, fp32.outputs, examples)
    worst = max_abs_diff(model, ref_outputs, outputs)
    agree = agreement(model, reference, pred)
    log(f"export: parity with PyTorch on {where}: max abs diff {worst:.2e}"
        + ("" if agree is None else f", predictions agree on {agree:.2%}"))  # fmt: skip
    if not worst <= PARITY_TOLERANCE:
        raise PipelineError(
            f"the ONNX graph differs from PyTorch by {worst:.2e} (tolerance {PARITY_TOLERANCE:g}): not written"
        )
    report: dict = {"format": "onnx", "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                    "checked_on": where, "max_abs_diff": worst, "agreement": agree, "int8": int8,
                    "inputs": input_names(model), **decoding_fields(model)}  # fmt: skip
    timed = examples[:SPEED_EXAMPLES]
    log(f"export: timing PyTorch and ONNX Runtime on {len(timed)} examples (medians of 3)")
    seconds = {
        "pytorch": median_seconds(lambda: model.predict(timed)),
        "onnx_fp32": median_seconds(lambda: fp32.predict(timed)),
    }
    if targets is not None:
        report["dev"] = {"metric": model.task.metric, "pytorch": dev_score(model, targets, reference),
                         "onnx_fp32": dev_score(model, targets, pred)}  # fmt: skip
    if int8:
        q = OnnxTaskModel(model, quantize(tmp))
        q_pred = q.predict(examples)
        report["dev"]["onnx_int8"] = dev_score(model, targets, q_pred)
        report["int8_agreement"] = agreement(model, reference, q_pred)
        drop = report["dev"]["pytorch"] - report["dev"]["onnx_int8"]
        metric = model.task.metric
        log(f"export: int8 dev {metric} {report['dev']['onnx_int8']:.4f} (PyTorch {report['dev']['pytorch']:.4f})")
        if drop > max_drop:
            raise PipelineError(
                f"int8 drops the dev {metric} by {drop:.4f} ({report['dev']['pytorch']:.4f} → "
                f"{report['dev']['onnx_int8']:.4f}), more than --int8-max-drop {max_drop:g}: not written "
                "(export without --int8, or allow a larger drop)"
            )
        seconds["onnx_int8"] = median_seconds(lambda: q.predict(timed))
    return {**report, "speed_examples": len(timed), **speed_fields(seconds)}


def run_recording(model: BiLSTMTaskModel, outputs, examples: list) -> tuple[list, list]:
    """(predictions, [(batch, outputs)] of each batch) of ``examples`` with ``outputs(batch)``."""
    seen: list = []

    def recorded(batch):
        out = outputs(batch)
        seen.append((batch, out.detach().float().numpy()))
        return out

    return model.predict_with(recorded, examples), seen


def max_abs_diff(model: BiLSTMTaskModel, reference: list, other: list) -> float:
    """The largest difference of two runs' outputs over the real positions (same batches)."""
    worst = 0.0
    for (batch, a), (_, b) in zip(reference, other):
        if model.task.target == "tags":  # (B, T, K): only each sentence's own tokens
            for r, e in enumerate(batch):
                worst = max(worst, float(np.abs(a[r, : len(e)] - b[r, : len(e)]).max()))
        else:
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def agreement(model: BiLSTMTaskModel, a: list, b: list) -> float | None:
    """The share of predictions that agree: of tokens for taggers, of examples for labels; None for scores."""
    target = model.task.target
    if target == "score":
        return None
    if target == "tags":
        pairs = [(x, y) for p, q in zip(a, b) for x, y in zip(p, q)]
    elif target == "labels":
        pairs = [(sorted(p[0]), sorted(q[0])) for p, q in zip(a, b)]
    else:
        pairs = [(p[0], q[0]) for p, q in zip(a, b)]
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else 1.0


def dev_score(model: BiLSTMTaskModel, targets: list, pred: list) -> float:
    return float(model.task.scores(model.cfg, targets, pred, model.labels)[model.task.metric])


def task_onnx_card(report: dict) -> str:
    """The model card's section on the ONNX graph: parity, int8's dev score, speed."""
    kind = "int8 weights, dynamic quantization" if report["int8"] else "fp32"
    agree = "" if report["agreement"] is None else f"; predictions agree on {report['agreement']:.2%}"
    lines = [
        "## ONNX",
        "",
        f"- `{ONNX_FILE}`: the whole model (word and character inputs, biLM, scalar mix, head) as one ONNX graph "
        f"({kind}); inputs {', '.join(f'`{n}`' for n in report['inputs'])}, output `{report['output']}`; "
        "`elmo predict`, `elmo evaluate` and `elmo serve` run it in ONNX Runtime (onnx.json: how to decode)",
        f"- parity with PyTorch on {report['checked_on']}: max abs diff {report['max_abs_diff']:.1e}{agree}",
    ]
    if "dev" in report:
        d = report["dev"]
        lines.append(f"- dev {d['metric']}: " + ", ".join(f"{k} {v:.4f}" for k, v in d.items() if k != "metric"))
    lines.append(
        f"- speed against PyTorch on {report['speed_examples']} of those examples (same machine, at export): "
        + ", ".join(f"{k} {v:.2f}x" for k, v in report["speed_vs_pytorch"].items())
    )
    return "\n".join(lines) + "\n"
