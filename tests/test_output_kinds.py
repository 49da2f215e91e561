"""Every output path holds one kind: a command replaces only outputs of its own kind and files it
writes itself; everything else is refused with one line and left byte-identical."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.io import directory_kind

from conftest import REPO

SAMPLES = REPO / "data" / "samples"


def snapshot(path: Path) -> dict:
    """Relative path → bytes of every file under ``path`` (or of ``path`` itself)."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def elmo(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL
    )


def refused(p, target: Path, before: dict):
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    assert snapshot(target) == before, "the refused path was modified"


@pytest.fixture(scope="module")
def ner_model(trained, tmp_path_factory):
    """A task model directory (ELMo inputs only, one epoch, tiny head)."""
    d = tmp_path_factory.mktemp("kinds")
    p = elmo(
        "-q",
        "finetune",
        "--task",
        "ner",
        "--train",
        str(SAMPLES / "ner" / "train.conll"),
        "--dev",
        str(SAMPLES / "ner" / "dev.conll"),
        "--encoder",
        str(trained / "enc"),
        "--epochs",
        "1",
        "--set",
        "head.hidden=8",
        "--out",
        str(d / "ner"),
        cwd=d,
    )
    assert p.returncode == 0, p.stderr
    return d / "ner"


def test_kinds_are_recorded_and_recognised(trained, ner_model):
    assert directory_kind(trained / "enc") == "encoder"
    assert directory_kind(ner_model) == "task-model"
    assert directory_kind(trained / "model") == "pretrain-run"
    assert directory_kind(trained / "model" / "best") == "bilm"
    assert directory_kind(next((trained / "model" / "checkpoints").iterdir())) == "checkpoint"
    assert directory_kind(trained / "prep") == "prepared-data"
    assert json.loads((trained / "enc" / "config.json").read_text())["kind"] == "encoder"


def test_finetune_refuses_to_replace_an_encoder(trained, tmp_path):
    enc = tmp_path / "enc"
    shutil.copytree(trained / "enc", enc)
    before = snapshot(enc)
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        str(SAMPLES / "ner" / "train.conll"),
        "--dev",
        str(SAMPLES / "ner" / "dev.conll"),
        "--encoder",
        str(trained / "enc"),
        "--epochs",
        "1",
        "--out",
        str(enc),
        cwd=tmp_path,
    )
    refused(p, enc, before)
    assert "holds an exported encoder" in p.stderr


def test_export_refuses_to_replace_a_task_model(trained, ner_model, tmp_path):
    before = snapshot(ner_model)
    p = elmo(
        "export", str(trained / "model" / "best"), str(ner_model), "--prepared", str(trained / "prep"), cwd=tmp_path
    )
    refused(p, ner_model, before)
    assert "holds a finetuned task model" in p.stderr


def test_finetune_refuses_a_plots_directory_holding_other_files(trained, tmp_path):
    plots = tmp_path / "sentiment"
    shutil.copytree(SAMPLES / "sentiment", plots)  # holds train.tsv/dev.tsv that are data, not curves
    before = snapshot(plots)
    p = elmo(
        "finetune",
        "--task",
        "classify",
        "--train",
        str(SAMPLES / "sentiment" / "train.tsv"),
        "--dev",
        str(SAMPLES / "sentiment" / "dev.tsv"),
        "--encoder",
        str(trained / "enc"),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "m"),
        "--plots",
        str(plots),
        cwd=tmp_path,
    )
    refused(p, plots, before)
    assert not (tmp_path / "m").exists()


def test_single_file_outputs_replace_only_their_own_kind(trained, ner_model, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("The fire .\n")
    before = snapshot(text)
    p = elmo("-q", "embed", str(text), "--encoder", str(trained / "enc"), "--out", str(text), cwd=tmp_path)
    refused(p, text, before)
    p = elmo("-q", "predict", str(text), "--model", str(ner_model), "--output", str(text), cwd=tmp_path)
    refused(p, text, before)
    p = elmo("-q", "lm-score", str(text), "--encoder", str(trained / "enc"), "--json", str(text), cwd=tmp_path)
    refused(p, text, before)
    # their own earlier outputs are replaced
    for args in (
        ("embed", str(text), "--encoder", str(trained / "enc"), "--out", "o.h5"),
        ("lm-score", str(text), "--encoder", str(trained / "enc"), "--json", "s.json"),
    ):
        for _ in range(2):
            assert elmo("-q", *args, cwd=tmp_path).returncode == 0
    # predictions carry no mark that tells them from a user's JSONL: never replaced, - is stdout
    assert (
        elmo("-q", "predict", str(text), "--model", str(ner_model), "--output", "p.jsonl", cwd=tmp_path).returncode == 0
    )
    before = snapshot(tmp_path / "p.jsonl")
    p = elmo("-q", "predict", str(text), "--model", str(ner_model), "--output", "p.jsonl", cwd=tmp_path)
    refused(p, tmp_path / "p.jsonl", before)
    assert "never replaces a file" in p.stderr and "--output -" in p.stderr
    p = elmo("-q", "predict", str(text), "--model", str(ner_model), "--output", "-", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["line"] == 1 and not (tmp_path / "-").exists()


def test_pretraining_refuses_an_output_directory_of_another_kind(trained, tmp_path):
    from pipeline.config import ModelConfig, PretrainConfig
    from pipeline.train.pretrain import pretrain

    enc = tmp_path / "enc"
    shutil.copytree(trained / "enc", enc)
    before = snapshot(enc)
    with pytest.raises(PipelineError, match="holds an exported encoder; refusing"):
        pretrain(
            ModelConfig(filters=[[1, 4]], projection_dim=8, cell_dim=16),
            PretrainConfig(max_steps=1),
            trained / "prep",
            enc,
            progress=False,
        )
    assert snapshot(enc) == before


def test_a_metrics_path_holding_another_file_is_refused_before_any_work(trained, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("my notes\n")
    before = snapshot(keep)
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        str(SAMPLES / "ner" / "train.conll"),
        "--dev",
        str(SAMPLES / "ner" / "dev.conll"),
        "--encoder",
        str(trained / "enc"),
        "--out",
        str(tmp_path / "m"),
        "--metrics",
        str(keep),
        cwd=tmp_path,
    )
    refused(p, keep, before)
    assert not (tmp_path / "m").exists()  # no training happened
