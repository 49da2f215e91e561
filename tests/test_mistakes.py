"""The mistakes suite: a user's mistake through the CLI or a stage script ends in one line and exit
1, and every file that existed before is byte-identical. Add a case here for every new mistake found."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from helpers import cli, env

SAMPLES = REPO / "data" / "samples"


def snapshot(path: Path) -> dict:
    """Relative path → bytes of every file under ``path`` (or of ``path`` itself)."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def stage(name, *args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def one_line(p: subprocess.CompletedProcess, *fragments: str) -> str:
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def work(trained, tmp_path):
    """Copies of the trained encoder and prepared data, and a text file, in a fresh directory."""
    shutil.copytree(trained / "enc", tmp_path / "enc")
    shutil.copytree(trained / "prep", tmp_path / "prep")
    (tmp_path / "text.txt").write_text("The fire spread .\nRain fell .\n")
    return tmp_path


def test_an_output_inside_a_model_directory_is_refused(work):
    before = snapshot(work / "enc")
    p = cli("lm-score", work / "text.txt", "--encoder", work / "enc", "--json", work / "enc" / "config.json", cwd=work)
    one_line(p, "enc/config.json", "lies inside the run's input")
    p = cli("embed", work / "text.txt", "--encoder", work / "enc", "--out", work / "prep" / "x.h5", cwd=work)
    one_line(p, "lies inside", "prepared data")
    assert snapshot(work / "enc") == before and not (work / "prep" / "x.h5").exists()


def test_a_json_output_replaces_only_a_file_it_wrote(work):
    mine = work / "package.json"
    mine.write_text('{"name": "my-app", "version": "1.0.0"}\n')
    before = snapshot(mine)
    p = cli("lm-score", work / "text.txt", "--encoder", work / "enc", "--json", mine, cwd=work)
    one_line(p, "package.json: exists and is not the perplexities of `elmo lm-score --json`")
    assert snapshot(mine) == before
    for _ in range(2):  # its own output is replaced
        assert (
            cli("-q", "lm-score", work / "text.txt", "--encoder", work / "enc", "--json", "s.json", cwd=work).returncode
            == 0
        )
    assert json.loads((work / "s.json").read_text())["written_by"] == "elmo-pipeline"
    # another command's marked output is not its kind: refused too
    (work / "w.json").write_text('{"written_by": "elmo-pipeline", "output": "word2vec evaluation"}\n')
    p = cli("lm-score", work / "text.txt", "--encoder", work / "enc", "--json", work / "w.json", cwd=work)
    one_line(p, "w.json: exists and is not the perplexities of `elmo lm-score --json`")


def test_word2vec_stage_outputs_never_land_on_its_prepared_data(work):
    before = snapshot(work / "prep")
    for flag, target in (("--report", "train.txt"), ("--metrics", "meta.json")):
        p = stage(
            "word2vec",
            "--params",
            REPO / "params.yaml",
            "--prepared",
            work / "prep",
            "--out",
            work / "w2v",
            flag,
            work / "prep" / target,
            cwd=work,
        )
        one_line(p, f"prep/{target}", "prep")
    p = stage(
        "word2vec",
        "--params",
        REPO / "params.yaml",
        "--prepared",
        work / "prep",
        "--out",
        work / "w2v",
        "--metrics",
        work / "same",
        "--report",
        work / "same",
        cwd=work,
    )
    one_line(p, "given as both --metrics and --report")
    assert snapshot(work / "prep") == before and not (work / "w2v").exists()


def test_adapt_refuses_to_write_over_its_own_source(work):
    before = snapshot(work / "enc")
    p = cli("adapt", work / "enc", work / "text.txt", work / "enc", cwd=work)
    one_line(p, "is the run's input", "(SOURCE)")
    assert snapshot(work / "enc") == before


def test_an_output_directory_holding_the_runs_input_is_refused(work):
    (work / "corpus").mkdir()
    (work / "corpus" / "text.txt").write_text("The fire spread .\n")
    before = snapshot(work / "corpus")
    p = cli("embed", work / "corpus" / "text.txt", "--encoder", work / "enc", "--out", work / "corpus", cwd=work)
    one_line(p, "holds the run's input")
    assert snapshot(work / "corpus") == before


@pytest.mark.parametrize("damage", ["no extra_types.txt", "char_ids.npy cut", "meta.json cut", "a shard cut"])
def test_damaged_prepared_data_is_one_line_naming_it(trained, work, damage):
    from pipeline.data.prepared import PreparedData

    prep = work / "prep"
    if damage == "no extra_types.txt":
        (prep / "extra_types.txt").unlink()
    else:
        f = {
            "char_ids.npy cut": prep / "char_ids.npy",
            "meta.json cut": prep / "meta.json",
            "a shard cut": next((prep / "test").glob("tokens-*.npy")),
        }[damage]
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    p = stage(
        "evaluate_lm", "--model", trained / "model" / "best", "--prepared", prep, "--metrics", work / "m.json", cwd=work
    )
    one_line(p, "damaged prepared data", "run the prepare stage again")
    with pytest.raises(Exception, match="damaged prepared data"):
        PreparedData(prep).split("test")


def test_an_encoder_with_nan_weights_is_refused_at_load(work):
    from safetensors.torch import load_file, save_file

    f = work / "enc" / "model.safetensors"
    state = load_file(str(f))
    name = sorted(state)[0]
    state[name][..., 0] = float("nan")
    save_file(state, str(f))
    p = cli("embed", work / "text.txt", "--encoder", work / "enc", "--out", work / "o.h5", cwd=work)
    one_line(p, "model.safetensors", f"{name} holds NaN or infinite values")
    assert not (work / "o.h5").exists()


def test_prepared_data_of_the_same_size_but_other_settings_is_refused(trained, tmp_path):
    from pipeline.config import PrepareConfig
    from pipeline.data.prepare import prepare_corpus
    from pipeline.data.prepared import PreparedData
    from pipeline.data.vocab import SPECIALS

    V = len(PreparedData(trained / "prep").vocab)
    cfg = PrepareConfig(
        corpus=str(trained / "c.txt"),
        valid_fraction=0.1,
        test_fraction=0.1,
        min_count=1,
        lowercase=True,
        max_vocab_size=V - len(SPECIALS),
    )
    prepare_corpus(cfg, tmp_path / "lower", progress=False)
    assert len(PreparedData(tmp_path / "lower").vocab) == V  # only the size matches
    for p in (
        stage(
            "evaluate_lm",
            "--model",
            trained / "model" / "best",
            "--prepared",
            tmp_path / "lower",
            "--metrics",
            tmp_path / "m.json",
            cwd=tmp_path,
        ),
        cli(
            "export",
            trained / "model" / "best",
            tmp_path / "enc",
            "--prepared",
            tmp_path / "lower",
            "--with-softmax",
            cwd=tmp_path,
        ),
    ):
        one_line(p, "trained on other prepared data than", "lower")
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "enc").exists()


def test_file_system_refusals_are_one_line(work):
    (work / "notes.txt").write_text("mine\n")
    cases = [
        (work / "notes.txt" / "x.h5", "notes.txt is a file, not a directory"),
        (work / ("a" * 300 + ".h5"), "File name too long"),
    ]
    if Path("/proc/sys").is_dir():  # Linux: a location nobody may write, even root
        cases.append((Path("/proc/sys/x.h5"), "cannot write in /proc/sys (read-only or no permission)"))
    for out, expect in cases:
        one_line(cli("embed", work / "text.txt", "--encoder", work / "enc", "--out", out, cwd=work), expect)
    assert (work / "notes.txt").read_text() == "mine\n"


def test_a_damaged_gzip_corpus_or_a_pipe_is_one_line(work):
    import gzip
    import os

    gz = work / "c.txt.gz"
    gz.write_bytes(gzip.compress(b"The fire spread .\n" * 200)[:60])
    one_line(
        cli("embed", gz, "--encoder", work / "enc", "--out", work / "o.h5", cwd=work),
        "c.txt.gz: not a valid gzip file, or a damaged one",
    )
    os.mkfifo(work / "fifo")
    one_line(
        cli("embed", work / "fifo", "--encoder", work / "enc", "--out", work / "o.h5", cwd=work),
        "fifo: input file is not a regular file",
        "give - to read standard input",
    )


def test_prepare_removes_what_a_killed_prepare_left_and_only_that(trained, tmp_path):
    from pipeline.config import PrepareConfig
    from pipeline.data.prepare import prepare_corpus

    (tmp_path / ".prep.abc123.tmp").mkdir()  # as a SIGKILLed prepare of out 'prep' leaves it
    (tmp_path / ".other.abc123.tmp").mkdir()  # another output's: perhaps being written right now
    cfg = PrepareConfig(corpus=str(trained / "c.txt"), valid_fraction=0.1, test_fraction=0.1)
    prepare_corpus(cfg, tmp_path / "prep", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.abc123.tmp", "prep"]
    with pytest.raises(Exception, match="holds the run's input"):
        prepare_corpus(cfg, trained, progress=False)


def test_finetune_never_writes_onto_its_labelled_files(work):
    (work / "data").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (work / "data" / name).write_bytes((SAMPLES / "sentiment" / name).read_bytes())
    before = snapshot(work / "data")
    base = [
        "finetune",
        "--task",
        "classify",
        "--train",
        work / "data" / "train.tsv",
        "--dev",
        work / "data" / "dev.tsv",
        "--model",
        "tfidf",
    ]
    one_line(cli(*base, "--out", work / "data", cwd=work), "holds the run's input")
    one_line(cli(*base, "--out", work / "m", "--metrics", work / "data" / "dev.tsv", cwd=work), "is the run's input")
    one_line(cli(*base, "--out", work / "m", "--plots", work / "data", cwd=work), "holds the run's input")
    assert snapshot(work / "data") == before and not (work / "m").exists()
