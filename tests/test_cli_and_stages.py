import json

import yaml

from helpers import BIN, copy_repo, elmo, run
from test_data_helpers import make_corpus


def test_dvc_repro_prepare_in_a_copy_of_the_repo(tmp_path):
    repo = copy_repo(tmp_path)
    (repo / "data" / "raw" / "corpus.txt").write_text(make_corpus(120))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"].update(corpus="data/raw/corpus.txt", valid_fraction=0.1, test_fraction=0.1, min_count=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    p = run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True)
    assert "Running stage 'prepare'" in p.stdout
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    meta = json.loads((repo / "data" / "prepared" / "meta.json").read_text())
    assert metrics == meta["stats"]
    assert metrics["train_sentences"] + metrics["valid_sentences"] + metrics["test_sentences"] == 120
    assert meta["config"]["corpus"] == "data/raw/corpus.txt"
    # up to date until a param or the corpus changes
    assert "didn't change" in run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True).stdout
    (repo / "data" / "raw" / "corpus.txt").write_text(make_corpus(60))
    run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True)
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert metrics["train_sentences"] + metrics["valid_sentences"] + metrics["test_sentences"] == 60
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=repo, check=True).stdout
    assert "train_tokens" in shown


def test_cli_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text("prepare:\n  corpus: missing.txt\n")
    p = elmo("prepare", "--params", "params.yaml", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.strip() == "error: missing.txt: corpus file not found"
    (tmp_path / "params.yaml").write_text("prepare:\n  min_count: lots\n")
    p = elmo("config", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "params.yaml: prepare.min_count: expected int" in p.stderr
    p = elmo("no-such-command", cwd=tmp_path)
    assert p.returncode == 2


def test_cli_prepare_writes_outputs(tmp_path):
    (tmp_path / "c.txt").write_text(make_corpus(80))
    (tmp_path / "params.yaml").write_text("prepare:\n  corpus: c.txt\n  valid_fraction: 0.2\n  test_fraction: 0.2\n")
    p = elmo("-q", "prepare", "--out", "prep", "--metrics", "m.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # quiet
    assert json.loads((tmp_path / "m.json").read_text())["train_sentences"] > 0
    assert (tmp_path / "prep" / "train" / "tokens-00000.npy").exists()
