"""PNG pictures of a plots directory (drawn offline) and the pipeline's headline summary."""

import json
import subprocess
import sys

import pytest

from pipeline.errors import PipelineError
from pipeline.plots import draw_pictures, is_ours, panels
from pipeline.report import summary_lines

from helpers import REPO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_plots(d):
    d.mkdir()
    (d / "train.tsv").write_text("step\tepoch\tloss\tppl\n10\t0\t5.0\t148.4\n20\t0\t4.0\t54.6\n")
    (d / "valid.tsv").write_text("step\tforward_ppl\tbackward_ppl\taverage_ppl\n20\t60\t62\t61\n")
    rows = [{"actual": "pos", "predicted": "pos"}] * 3 + [{"actual": "neg", "predicted": "pos"}]
    (d / "confusion.json").write_text(json.dumps(rows))
    return d


def test_curves_and_confusion_are_drawn_as_png(tmp_path):
    d = write_plots(tmp_path / "plots")
    written = draw_pictures(d)
    assert [p.name for p in written] == ["curves.png", "confusion.png"]
    for p in written:
        data = p.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000 and is_ours(p)
    titles = [title for title, _, _ in panels(d)]
    assert titles == ["train: loss", "train: ppl", "valid: perplexity"]  # step/epoch are axes, not curves
    again = draw_pictures(d)  # ours: replaced
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]  # same input, same picture


def test_a_png_we_did_not_draw_is_not_replaced(tmp_path):
    d = write_plots(tmp_path / "plots")
    (d / "curves.png").write_bytes(PNG_SIGNATURE + b"someone else's picture")
    with pytest.raises(PipelineError, match="not a picture elmo-pipeline drew"):
        draw_pictures(d)
    assert (d / "curves.png").read_bytes() == PNG_SIGNATURE + b"someone else's picture"


def test_elmo_plot_refuses_a_directory_without_curves_in_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "plot", str(tmp_path)], capture_output=True, text=True, cwd=REPO
    )
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "not a plots directory" in p.stderr


def test_summary_has_a_line_per_stage_with_metrics(tmp_path):
    (tmp_path / "pretrain.json").write_text(
        json.dumps(
            {"parameters": 1000, "steps": 5, "best_valid_average_ppl": 99.5, "best_step": 5, "stopped_by": "steps"}
        )
    )
    (tmp_path / "finetune_sentiment.json").write_text(
        json.dumps({"dev_accuracy": 0.9, "test_accuracy": 0.85, "model": "tfidf", "train_examples": 40})
    )
    lines = summary_lines(tmp_path)
    assert len(lines) == 2
    assert lines[0].startswith("pretrain") and "99.50" in lines[0]
    assert "test accuracy 0.8500" in lines[1] and "model tfidf" in lines[1]
    assert summary_lines(tmp_path / "missing") == []


def test_finetune_from_python_draws_its_pictures(tmp_path):
    from pipeline import finetune, load_finetune_config

    samples = REPO / "data" / "samples" / "sentiment"
    cfg = load_finetune_config(
        None,
        {
            "task": "classify",
            "model": "tfidf",
            "data.train": str(samples / "train.tsv"),
            "data.dev": str(samples / "dev.tsv"),
        },
    )
    result = finetune(cfg, tmp_path / "clf", tmp_path / "plots", progress=False)
    assert result["dev"]["accuracy"] > 0.5
    assert (tmp_path / "plots" / "confusion.png").read_bytes().startswith(PNG_SIGNATURE)


def test_evaluate_takes_the_format_from_the_training_file_name(tmp_path):
    """A model trained on train.tsv (format from the name) evaluates a .txt file in the same format."""
    samples = REPO / "data" / "samples" / "sentiment"
    elmo = [sys.executable, "-m", "pipeline.cli"]
    args = ["finetune", "--task", "classify", "--model", "tfidf", "--out", str(tmp_path / "m"), "--test"]
    p = subprocess.run(
        [
            *elmo,
            *args,
            str(samples / "test.tsv"),
            "--train",
            str(samples / "train.tsv"),
            "--dev",
            str(samples / "dev.tsv"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "C=" in p.stdout, p.stderr
    (tmp_path / "test.txt").write_bytes((samples / "test.tsv").read_bytes())
    p = subprocess.run(
        [*elmo, "evaluate", str(tmp_path / "test.txt"), "--model", str(tmp_path / "m")], capture_output=True, text=True
    )
    assert p.returncode == 0 and "accuracy" in p.stdout, p.stderr


def test_evaluate_reads_a_headerless_file_with_set(tmp_path):
    """A model trained on a headered TSV scores a headerless label<TAB>text file given --set."""
    samples = REPO / "data" / "samples" / "sentiment"
    elmo = [sys.executable, "-m", "pipeline.cli"]
    train = ["--train", str(samples / "train.tsv"), "--dev", str(samples / "dev.tsv")]
    p = subprocess.run(
        [*elmo, "finetune", "--task", "classify", "--model", "tfidf", "--out", str(tmp_path / "m"), *train]
    )
    assert p.returncode == 0
    rows = (samples / "test.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    text_col, label_col = header.index("sentence"), header.index("label")
    swapped = [f"{r.split(chr(9))[label_col]}\t{r.split(chr(9))[text_col]}" for r in rows[1:]]
    (tmp_path / "plain.tsv").write_text("\n".join(swapped) + "\n")
    evaluate = [*elmo, "evaluate", str(tmp_path / "plain.tsv"), "--model", str(tmp_path / "m")]
    p = subprocess.run(
        [*evaluate, "--set", "data.text_field=1", "--set", "data.label_field=0"], capture_output=True, text=True
    )
    assert p.returncode == 0 and f"{len(swapped)} examples" in p.stdout, p.stderr
    p = subprocess.run([*evaluate, "--set", "head.hidden=3"], capture_output=True, text=True)
    assert p.returncode == 1 and "evaluate takes only how the file is read" in p.stderr
    p = subprocess.run([*evaluate, "--set", "text_filed=1"], capture_output=True, text=True)
    assert p.returncode == 1 and "read (did you mean 'data.text_field'?)" in p.stderr
