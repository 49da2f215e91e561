import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.config import ModelConfig, PrepareConfig, PretrainConfig
from pipeline.data.corpus import read_corpus
from pipeline.data.prepare import prepare_corpus
from pipeline.errors import PipelineError
from pipeline.train.evaluate import evaluate_saved
from pipeline.train.pretrain import pretrain

from conftest import REPO
from helpers import BIN, env, run, tiny_repo

SMALL = dict(filters=[[1, 4], [2, 4], [3, 8]], n_highway=1, projection_dim=32, cell_dim=64, dropout=0.0)


def test_tiny_model_overfits_twenty_sentences(twenty, tmp_path):
    cfg = PretrainConfig(max_tokens=1000, epochs=60, lr=0.01, eval_every=30, checkpoint_every=30, log_every=10)
    m = pretrain(ModelConfig(**SMALL), cfg, twenty, tmp_path / "out", tmp_path / "m.json", progress=False)
    assert m["best_valid_average_ppl"] < 5  # from ~250 (the vocabulary size) at the start
    assert json.loads((tmp_path / "m.json").read_text()) == {
        "written_by": "elmo-pipeline",
        "output": "pretrain summary",
        **m,
    }
    test = evaluate_saved(tmp_path / "out" / "best", twenty)
    assert test["test_average_ppl"] == pytest.approx(m["best_valid_average_ppl"], rel=1e-6)  # same text
    rows = (tmp_path / "out" / "plots" / "train.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["step", "epoch", "loss"] and len(rows) == 1 + 6


def test_nan_loss_stops_with_a_clear_error(twenty, tmp_path):
    cfg = PretrainConfig(max_tokens=300, epochs=5, lr=1e30, grad_clip=None, checkpoint_every=1)
    with pytest.raises(PipelineError, match=r"loss is nan at step \d+; training stopped \(the last good checkpoint is"):
        pretrain(ModelConfig(**SMALL), cfg, twenty, tmp_path / "out", progress=False)


def _stage_cmd(params: Path, prep: Path, out: Path, *extra):
    return [
        sys.executable,
        str(REPO / "stages" / "pretrain.py"),
        "--params",
        str(params),
        "--prepared",
        str(prep),
        "--out",
        str(out / "model"),
        "--metrics",
        str(out / "metrics.json"),
        "--plots",
        str(out / "plots"),
        "-q",
        *extra,
    ]


def _params(tmp_path, **pretrain_over):
    p = tmp_path / "params.yaml"
    pre = dict(
        max_tokens=300,
        epochs=40,
        max_steps=120,
        lr=0.005,
        eval_every=20,
        checkpoint_every=10,
        keep_checkpoints=2,
        log_every=5,
        seed=3,
    )
    pre.update(pretrain_over)
    p.write_text(yaml.safe_dump({"model": {**SMALL, "dropout": 0.2}, "pretrain": pre}))
    return p


def _curve(path: Path):
    """train.tsv without the timing columns."""
    rows = [r.split("\t") for r in path.read_text().splitlines()]
    return [r[:4] + r[5:6] for r in rows]


def test_killed_and_resumed_run_matches_uninterrupted(twenty, tmp_path):
    params = _params(tmp_path)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_stage_cmd(params, twenty, full), check=True, env=env())

    proc = subprocess.Popen(_stage_cmd(params, twenty, cut), env=env())
    first = cut / "model" / "checkpoints" / "step-0000010"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (cut / "metrics.json").exists()

    subprocess.run(_stage_cmd(params, twenty, cut), check=True, env=env())  # re-run = resume
    m = json.loads((cut / "metrics.json").read_text())
    assert m["resumed_from_step"] >= 10 and m["steps"] == 120
    a = load_file(str(full / "model" / "checkpoints" / "step-0000120" / "model.safetensors"))
    b = load_file(str(cut / "model" / "checkpoints" / "step-0000120" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _curve(full / "plots" / "train.tsv") == _curve(cut / "plots" / "train.tsv")
    assert (full / "plots" / "valid.tsv").read_text() == (cut / "plots" / "valid.tsv").read_text()
    assert sorted(p.name for p in (cut / "model" / "checkpoints").iterdir()) == ["step-0000110", "step-0000120"]


def test_checkpoints_from_other_settings_are_not_resumed(twenty, tmp_path):
    out = tmp_path / "o"
    subprocess.run(_stage_cmd(_params(tmp_path, max_steps=10), twenty, out), check=True, env=env())
    p = subprocess.run(
        _stage_cmd(_params(tmp_path, max_steps=20, lr=0.001), twenty, out),
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "from other settings; starting afresh" in p.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed_from_step"] is None
    # a budget change alone resumes
    subprocess.run(_stage_cmd(_params(tmp_path, max_steps=30, lr=0.001), twenty, out), check=True, env=env())
    assert json.loads((out / "metrics.json").read_text())["resumed_from_step"] == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(twenty, tmp_path):
    """Data-parallel correctness on CPU: torchrun, gloo backend, each process half of every batch."""
    # why Adagrad (ELMo's, accumulator 1.0): its step is linear in small gradients, so the processes'
    # different summation order stays at rounding level; Adam's g/sqrt(v) blows it up for weights
    # whose gradients are near 0 (seen: one softmax weight of 8,896 off by 4e-5 after 6 steps)
    params = _params(tmp_path, max_steps=6, checkpoint_every=6, eval_every=6, grad_accum=2, optimizer="adagrad", lr=0.2)
    p = tmp_path / "params.yaml"
    cfg = yaml.safe_load(p.read_text())
    cfg["model"]["dropout"] = 0.0
    p.write_text(yaml.safe_dump(cfg))
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_stage_cmd(params, twenty, one), check=True, env=env())
    e = dict(env(), OMP_NUM_THREADS="1")
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    subprocess.run(launcher + _stage_cmd(params, twenty, two)[1:], check=True, env=e, timeout=300)
    m = json.loads((two / "metrics.json").read_text())
    assert m["processes"] == 2 and m["steps"] == 6
    a = load_file(str(one / "model" / "checkpoints" / "step-0000006" / "model.safetensors"))
    b = load_file(str(two / "model" / "checkpoints" / "step-0000006" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), (k, float((a[k] - b[k]).abs().max()))
    assert json.loads((one / "metrics.json").read_text())["best_valid_average_ppl"] == pytest.approx(
        m["best_valid_average_ppl"], rel=1e-4
    )


def test_dvc_repro_pretrain_and_evaluate_lm_with_tiny_preset(tmp_path):
    repo = tiny_repo(tmp_path, pretrain=dict(max_steps=8, eval_every=4, checkpoint_every=4))
    run([str(BIN / "dvc"), "repro", "evaluate_lm"], cwd=repo, check=True)
    m = json.loads((repo / "metrics" / "pretrain.json").read_text())
    assert m["steps"] == 8 and m["best_valid_average_ppl"] > 1
    t = json.loads((repo / "metrics" / "evaluate_lm.json").read_text())
    assert set(t) == {
        "written_by",
        "output",
        "test_forward_ppl",
        "test_backward_ppl",
        "test_average_ppl",
        "test_tokens",
    }
    assert (repo / "models" / "pretrain" / "best" / "model.safetensors").is_file()
    assert len((repo / "plots" / "pretrain" / "valid.tsv").read_text().splitlines()) == 1 + 2
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=repo, check=True).stdout
    assert "test_average_ppl" in shown and "best_valid_average_ppl" in shown


def test_pretraining_path_imports_only_what_a_bare_gpu_machine_has():
    code = (
        "import sys; sys.path.insert(0, 'stages');"  # as `python stages/pretrain.py` runs it
        "import pretrain, pipeline.train.pretrain, pipeline.train.launch;"
        "bad = {'gensim', 'datasets', 'sentencepiece', 'sklearn', 'h5py', 'dvc', 'scipy', 'pandas'};"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_same_seed_same_weights_with_several_threads(tmp_path):
    """Determinism on a multi-threaded CPU: the token gather's backward must not race (it did)."""
    lines = [line.text for line in read_corpus("default")][:600]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    c = str(tmp_path / "c.txt")
    prepare_corpus(PrepareConfig(corpus=c, valid=c, test=c), tmp_path / "prep", progress=False)
    cfg = PretrainConfig(max_tokens=1024, max_steps=3, eval_every=3, checkpoint_every=3, seed=5)
    runs = []
    for name in ("a", "b"):
        pretrain(ModelConfig(), cfg, tmp_path / "prep", tmp_path / name, progress=False)
        runs.append(load_file(str(tmp_path / name / "checkpoints" / "step-0000003" / "model.safetensors")))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(twenty, tmp_path, capsys):
    def run(steps):
        cfg = PretrainConfig(
            max_tokens=300, epochs=100, max_steps=steps, eval_every=10, checkpoint_every=10, keep_checkpoints=2
        )
        return pretrain(ModelConfig(**SMALL), cfg, twenty, tmp_path / "out", progress=False)

    run(20)
    ckpts = tmp_path / "out" / "checkpoints"
    weights = ckpts / "step-0000020" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a crash mid-write of a file system without atomic rename
    assert run(30)["resumed_from_step"] == 10
    assert "step-0000020 is damaged (PipelineError: " in capsys.readouterr().err
    for d in ckpts.iterdir():
        (d / "state.pt").write_bytes(b"")
    with pytest.raises(PipelineError, match="every checkpoint is damaged .*run with --no-resume"):
        run(40)
    assert len(list(ckpts.iterdir())) == 2  # left for the user to look at
