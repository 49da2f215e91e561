"""ONNX export of an encoder (``elmo export --format onnx``): the biLM as one ONNX graph
(:mod:`pipeline.bilm.exported`) beside the encoder's own files, checked against PyTorch before it
is written, optionally quantized to int8.

The directory is an encoder directory (config.json, weights, vocabulary, tokenizer, card) plus
``model.onnx`` and ``onnx.json``; ``Encoder.from_pretrained`` runs it in ONNX Runtime, and so do
``elmo embed`` and ``elmo serve``. The graph alone (inputs ``chars`` and ``lengths``, output
``layers``) runs in any ONNX runtime, from any language.

- **Parity**: on the check sentences (``--check-text``, else a built-in set of 48 sentences of 1
  to 60 tokens, unknown words and non-ASCII text included) every layer of the graph is compared
  with PyTorch's ``Encoder.embed``: the largest absolute difference and the lowest cosine per
  layer go into ``onnx.json`` and the card; over ``PARITY_TOLERANCE`` nothing is written.
- **int8** (``--int8``): ONNX Runtime's dynamic quantization (int8 weights of the matrix products,
  activations quantized per call); its vectors are compared with fp32's and its speed with the fp32
  graph's and PyTorch's on the same sentences. Refused, nothing written, when the lowest cosine
  falls below ``--int8-min-cosine`` (default 0.99).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import torch

from pipeline.config import INT8_MIN_COSINE
from pipeline.cpu import median_seconds
from pipeline.encoder import (
    ENCODER_FILES,
    ENCODER_KIND,
    ONNX_FILE,
    ONNX_REPORT,
    Encoder,
    OnnxEncoder,
    bilm_graph_inputs,
)
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, check_replaceable, directory_kind, output_lock

PARITY_TOLERANCE = 1e-4  # largest absolute difference of any layer from PyTorch's
CHECK_SENTENCES = [
    "The fire spread quickly through the old wooden houses .",
    "Hello !",
    "Prices rose 3.5 % in September , the highest since 2019 .",
    "Zyxwvut flibbertigibbet quaggamire unheard-of tokens here .",
    "Café , naïve , Zürich and São Paulo are not ASCII .",
    "a",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 6),
    "Nobody could call the acting beautiful , but the soundtrack was superb from start to finish .",
]


def check_sentences(path: str | Path | None) -> list[str]:
    """The parity sentences: the lines of ``path``, else the built-in set (each length thrice, in
    different batches of the check)."""
    if path is None:
        return CHECK_SENTENCES * 6
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise PipelineError(f"{path}: no sentences to check the export with")
    return lines[:1000]


def write_graph(encoder: Encoder, path: Path) -> None:
    """The encoder's biLM as an ONNX graph at ``path`` (dynamic batch and length)."""
    from pipeline.bilm.exported import ExportedBiLM

    graph = ExportedBiLM(encoder.model)
    rows = [["<S>", "a", "b", "</S>"], ["<S>", "c", "</S>"]]
    chars, lengths = bilm_graph_inputs([r[1:-1] for r in rows], encoder.max_chars)
    B, T = torch.export.Dim("batch"), torch.export.Dim("length")
    with quiet():
        torch.onnx.export(
            graph, (torch.from_numpy(chars), torch.from_numpy(lengths)), str(path), dynamo=True,
            input_names=["chars", "lengths"], output_names=["layers"], dynamic_shapes=({0: B, 1: T}, {0: B}),
            external_data=False, verbose=False,
        )  # fmt: skip


@contextlib.contextmanager
def quiet():
    """The exporter's and quantizer's own chatter (progress on stdout, warnings, log lines about
    optional packages and graph pre-processing) kept off the user's terminal."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def compare(reference: list[np.ndarray], other: list[np.ndarray]) -> dict:
    """Per layer, over every token of every sentence: the largest absolute difference and the
    lowest cosine between ``other``'s vectors and ``reference``'s."""
    n_layers = reference[0].shape[0]
    out: dict[str, list[float]] = {"max_abs_diff": [], "lowest_cosine": []}
    for k in range(n_layers):
        a = np.concatenate([r[k] for r in reference])  # (tokens, 2P)
        b = np.concatenate([o[k] for o in other])
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        out["max_abs_diff"].append(float(np.abs(a - b).max()))
        out["lowest_cosine"].append(float(cos.min()))
    return out


def export_onnx(
    source: str | Path,
    out_dir: str | Path,
    prepared: str | Path | None = None,
    int8: bool = False,
    int8_min_cosine: float = INT8_MIN_COSINE,
    check_text: str | Path | None = None,
    log=print,
) -> dict:
    """Write the ONNX export of ``source`` (an encoder directory, or a pretrained biLM such as
    ``models/pretrain/best`` with ``prepared``) to ``out_dir``; returns the report (``onnx.json``)."""
    out_dir = Path(out_dir)
    check_replaceable(out_dir, ENCODER_KIND, ENCODER_FILES)
    sentences = check_sentences(check_text)
    with export_workspace(out_dir) as tmp:
        encoder_dir = _encoder_dir(Path(source), tmp / "encoder", prepared)
        encoder = Encoder.from_pretrained(encoder_dir, runtime="torch")
        log(f"export: writing the ONNX graph of {source} ({encoder.n_layers} layers of {encoder.dim})")
        write_graph(encoder, tmp / "fp32.onnx")
        report = check_graphs(encoder, tmp, sentences, int8, int8_min_cosine, log)
        write_export(out_dir, (ENCODER_KIND, ENCODER_FILES), encoder_dir, tmp, report, onnx_card(report))
    return report


@contextlib.contextmanager
def export_workspace(out_dir: Path) -> Iterator[Path]:
    """A temporary directory beside ``out_dir`` (same file system: the export is renamed into
    place), while ``out_dir``'s lock is held."""
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir), tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.onnx-", dir=parent) as t:
        yield Path(t)


def write_export(out_dir: Path, kind: tuple[str, Collection[str]], model_dir: Path, tmp: Path, report: dict, card: str):
    """``out_dir``, atomically: ``model_dir``'s files (without an older graph), the graph checked in
    ``tmp`` (``int8.onnx`` or ``fp32.onnx``, as ``report`` says), ``onnx.json`` and the card's
    ``card`` section. ``kind``: the directory's kind and the names it may hold."""
    with atomic_path(out_dir, kind=kind[0], own=kind[1]) as target:
        shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns(ONNX_FILE, ONNX_REPORT))
        shutil.copy(tmp / ("int8.onnx" if report["int8"] else "fp32.onnx"), target / ONNX_FILE)
        (target / ONNX_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        with open(target / "README.md", "a", encoding="utf-8") as f:
            f.write("\n" + card)


def _encoder_dir(source: Path, tmp: Path, prepared) -> Path:
    """``source`` itself when it is an encoder directory (its ONNX files left out), else a pretrained
    biLM exported to ``tmp`` first."""
    kind = directory_kind(source)
    if kind == ENCODER_KIND:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(ONNX_FILE, ONNX_REPORT))
        return tmp
    if kind in ("bilm", "checkpoint"):
        from pipeline.export import export_encoder

        return export_encoder(source, tmp, prepared)
    raise PipelineError(
        f"{source}: not an encoder directory or a pretrained biLM (models/pretrain/best, a checkpoint): "
        "nothing to export to ONNX"
    )


def check_graphs(encoder: Encoder, tmp: Path, sentences: list[str], int8: bool, min_cosine: float, log) -> dict:
    """Parity of the fp32 graph (refused over :data:`PARITY_TOLERANCE`), and with ``int8`` the
    quantized graph's drift (refused under ``min_cosine``) and speeds; the report."""
    import onnxruntime

    reference = encoder.embed(sentences)
    fp32 = OnnxEncoder(encoder, tmp / "fp32.onnx")
    parity = compare(reference, fp32.embed(sentences))
    worst = max(parity["max_abs_diff"])
    log(f"export: parity with PyTorch on {len(sentences)} sentences: max abs diff {worst:.2e} (layers "
        + ", ".join(f"{d:.1e}" for d in parity["max_abs_diff"]) + ")")  # fmt: skip
    if not worst <= PARITY_TOLERANCE:
        raise PipelineError(
            f"the ONNX graph differs from PyTorch by {worst:.2e} (tolerance {PARITY_TOLERANCE:g}): not written"
        )
    log(f"export: timing PyTorch and ONNX Runtime on the {len(sentences)} sentences (medians of 3)")
    seconds = {
        "pytorch": median_seconds(lambda: encoder.embed(sentences)),
        "onnx_fp32": median_seconds(lambda: fp32.embed(sentences)),
    }
    report = {"format": "onnx", "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
              "sentences": len(sentences), "tokens": sum(len(r[0]) for r in reference),
              "parity_fp32": parity, "int8": int8}  # fmt: skip
    if int8:
        report["int8_vs_fp32"] = quantize_checked(encoder, tmp, sentences, reference, min_cosine, seconds, log)
    return {**report, **speed_fields(seconds)}


def speed_fields(seconds: dict[str, float]) -> dict:
    """The report's ``seconds`` per runtime and each ONNX runtime's ``speed_vs_pytorch``."""
    return {
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "speed_vs_pytorch": {k: round(seconds["pytorch"] / v, 2) for k, v in seconds.items() if k != "pytorch"},
    }


def quantize(tmp: Path) -> Path:
    """``tmp/int8.onnx``: ONNX Runtime's dynamic int8 quantization of ``tmp/fp32.onnx`` (the
    ``Scan`` body's matrix products too)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(tmp / "fp32.onnx", tmp / "int8.onnx", weight_type=QuantType.QInt8,
                         extra_options={"EnableSubgraph": True})  # fmt: skip
    return tmp / "int8.onnx"


def quantize_checked(encoder, tmp: Path, sentences, reference, min_cosine: float, seconds: dict, log) -> dict:
    q = OnnxEncoder(encoder, quantize(tmp))
    drift = compare(reference, q.embed(sentences))
    lowest = min(drift["lowest_cosine"])
    log(f"export: int8 against fp32: lowest cosine {lowest:.4f}, max abs diff {max(drift['max_abs_diff']):.3f}")
    if lowest < min_cosine:
        raise PipelineError(
            f"int8 vectors drift from fp32: lowest cosine {lowest:.4f} is under --int8-min-cosine {min_cosine:g}: "
            "not written (export without --int8, or lower the bound)"
        )
    seconds["onnx_int8"] = median_seconds(lambda: q.embed(sentences))
    return drift


def onnx_card(report: dict) -> str:
    """The model card's section on the ONNX graph: parity, int8 drift, speed."""
    p = report["parity_fp32"]
    kind = "int8 weights, dynamic quantization" if report["int8"] else "fp32"
    lines = [
        "## ONNX",
        "",
        f"- `{ONNX_FILE}`: the biLM as one ONNX graph ({kind}); "
        "inputs `chars` (B, T, C) int64 and `lengths` (B,) int64, output `layers` (L+1, B, T, 2P); "
        "`Encoder.from_pretrained` and `elmo embed` / `elmo serve` run it in ONNX Runtime",
        f"- parity with PyTorch (fp32 graph, {report['sentences']} sentences, {report['tokens']} tokens): "
        "max abs diff per layer " + ", ".join(f"{d:.1e}" for d in p["max_abs_diff"]),
    ]
    if report["int8"]:
        d = report["int8_vs_fp32"]
        lines.append(
            "- int8 against fp32: lowest cosine per layer " + ", ".join(f"{c:.4f}" for c in d["lowest_cosine"])
        )
    lines.append(
        "- speed against PyTorch on those sentences (same machine, at export): "
        + ", ".join(f"{k} {v:.2f}x" for k, v in report["speed_vs_pytorch"].items())
    )
    return "\n".join(lines) + "\n"
