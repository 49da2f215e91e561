"""A careless user's mistakes on the newer surfaces (standard streams, output kinds, task inference,
`elmo report` and `elmo plot` on files of the right name and the wrong content, YAML constructs,
first-contact recipes): each is one line, the right exit code, nothing replaced that the command
did not write, and a bounded time. No GPU, no encoder: a TF-IDF model stands for any task model."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
from helpers import cli, env

SAMPLES = REPO / "data" / "samples" / "sentiment"


def one_line(p: subprocess.CompletedProcess, *fragments: str, code: int = 1) -> str:
    assert p.returncode == code, p.stderr
    lines = [x for x in p.stderr.strip().splitlines() if not x.startswith("usage:") and not x.startswith(" ")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A TF-IDF sentence classifier of the sentiment sample (seconds to train)."""
    d = tmp_path_factory.mktemp("tfidf")
    p = cli("-q", "finetune", "--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv",
            "--dev", SAMPLES / "dev.tsv", "--out", d / "m", cwd=d)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return d / "m"


# --- standard streams ----------------------------------------------------------------------------


def test_dash_is_standard_output_for_text_and_json_outputs_and_refused_for_directories(model, tmp_path):
    p = cli("predict", "-", "--model", model, "--output", "-", cwd=tmp_path, stdin=None, input="a fine film\n")
    assert p.returncode == 0 and json.loads(p.stdout)["line"] == 1, p.stderr
    p = cli("evaluate", SAMPLES / "test.tsv", "--model", model, "--metrics", "-", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["output"] == "evaluate scores", p.stderr
    assert "accuracy" in p.stderr  # the human-readable lines moved to standard error
    p = cli("finetune", "--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv",
            "--dev", SAMPLES / "dev.tsv", "--out", "-", cwd=tmp_path)  # fmt: skip
    one_line(p, "--out -: standard output takes only a text or JSON output")
    assert not (tmp_path / "-").exists()


def test_closed_standard_streams_and_dev_stdin_on_a_pipe_are_one_line(model, tmp_path):
    closed_in = cli("predict", "-", "--model", model, cwd=tmp_path, stdin=None, preexec_fn=lambda: os.close(0))
    one_line(closed_in, "standard input is closed")
    closed_out = subprocess.run(
        f"{sys.executable} -m pipeline.cli predict - --model {model} >&-",
        shell=True, input="a film\n", capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=120,
    )  # fmt: skip
    one_line(closed_out, "standard output is closed")
    piped = cli("predict", "/dev/stdin", "--model", model, cwd=tmp_path, stdin=None, input="a film\n")
    one_line(piped, "/dev/stdin: input file is not a regular file", "give - to read standard input")


def test_a_pipe_given_as_training_data_is_refused_before_task_inference_reads_it(tmp_path):
    os.mkfifo(tmp_path / "train.txt")
    (tmp_path / "w.txt").write_text("2 3\nthe 0 0 1\nfilm 1 0 0\n")  # word2vec text format
    start = time.time()
    p = cli("finetune", "--train", "train.txt", "--dev", "train.txt", "--out", "m", "--word2vec", "w.txt",
            cwd=tmp_path)  # fmt: skip
    one_line(p, "train.txt", "is not a regular file")
    assert time.time() - start < 60  # nothing waited on the pipe


# --- what an output may replace ------------------------------------------------------------------


def test_an_output_replaces_only_its_own_kind_and_predictions_never(model, tmp_path):
    stage_summary = tmp_path / "finetune_ner.json"  # a finetune stage's headline numbers
    stage_summary.write_text('{"written_by": "elmo-pipeline", "output": "finetune summary", "dev_f1": 0.5}\n')
    before = stage_summary.read_bytes()
    p = cli("evaluate", SAMPLES / "test.tsv", "--model", model, "--metrics", stage_summary, cwd=tmp_path)
    one_line(p, "finetune_ner.json: exists and is not the scores of `elmo evaluate --metrics`")
    assert stage_summary.read_bytes() == before
    for _ in range(2):  # its own kind: replaced
        p = cli("-q", "evaluate", SAMPLES / "test.tsv", "--model", model, "--metrics", "e.json", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    neighbours = tmp_path / "n.txt"
    neighbours.write_text("# elmo-pipeline: word2vec nearest neighbours\nthe: a, an\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "prepare.json").write_text('{"train_sentences": 3}\n')
    p = cli("report", "--metrics-dir", "metrics", "--out", neighbours, cwd=tmp_path)
    one_line(p, "n.txt: exists and is not a text output of elmo-pipeline (headline numbers")
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"line": 1, "label": "my own data"}\n')  # looks like predictions, is not ours to replace
    p = cli("predict", SAMPLES / "test.tsv", "--model", model, "--output", mine, cwd=tmp_path)
    one_line(p, "mine.jsonl: exists; `elmo predict` never replaces a file", "--output -")
    assert mine.read_text() == '{"line": 1, "label": "my own data"}\n'


# --- our own files, read defensively -------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expect",
    [
        ('{"train_sentences": "many"}', "prepare.json: train_sentences: expected int, got 'many'"),
        ('{"train_sentences": true}', "prepare.json: train_sentences: expected int, got True"),
        ("[1, 2]", "prepare.json: a JSON list, not an object"),
        (b"\xff\xfe{}", "prepare.json: not UTF-8 text"),
        ('{"train_sentences": 3', "prepare.json: not valid JSON"),
    ],
)
def test_report_on_a_metrics_file_of_the_wrong_content_names_file_and_field(tmp_path, content, expect):
    (tmp_path / "metrics").mkdir()
    path = tmp_path / "metrics" / "prepare.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    one_line(cli("report", "--metrics-dir", "metrics", cwd=tmp_path), expect)


def test_plot_is_bounded_and_reads_its_files_defensively(tmp_path):
    wide = tmp_path / "wide"
    wide.mkdir()
    cols = ["step"] + [f"c{i}" for i in range(1000)]
    rows = ["\t".join(cols)] + ["\t".join(str(s * (i + 1)) for i in range(len(cols))) for s in range(1, 4)]
    (wide / "curves.tsv").write_text("\n".join(rows) + "\n")
    start = time.time()
    p = cli("plot", wide, cwd=tmp_path)
    assert p.returncode == 0 and (wide / "curves.png").is_file(), p.stderr
    assert time.time() - start < 60  # 1,000 columns: the first 24 panels, with a note in the picture
    labels = tmp_path / "labels"
    labels.mkdir()
    pairs = [{"actual": f"l{i % 500}", "predicted": f"l{(i * 7) % 500}"} for i in range(5000)]
    (labels / "confusion.json").write_text(json.dumps(pairs))
    p = cli("plot", labels, cwd=tmp_path)
    assert p.returncode == 0 and (labels / "confusion.png").is_file(), p.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "curves.tsv").write_bytes(b"step\tloss\n1\t\xff\xfe\n")
    one_line(cli("plot", bad, cwd=tmp_path), "curves.tsv: not UTF-8 text")
    (bad / "curves.tsv").unlink()
    (bad / "confusion.json").write_text('{"actual": "a"}')
    one_line(cli("plot", bad, cwd=tmp_path), "confusion.json: not a confusion table", "a JSON dict, not a list")


# --- YAML -----------------------------------------------------------------------------------------


def test_yaml_merge_keys_and_anchors_work_and_odd_keys_are_one_line(tmp_path):
    from pipeline.config import load_params
    from pipeline.errors import PipelineError

    params = tmp_path / "params.yaml"
    params.write_text(
        "finetune_ner:\n  training: &short {epochs: 3, patience: 2}\n"
        "finetune_sentiment:\n  training:\n    <<: *short\n    epochs: 4\n"
    )
    p = load_params(params)
    assert (p.finetune_ner.training.epochs, p.finetune_sentiment.training.epochs) == (3, 4)
    assert p.finetune_sentiment.training.patience == 2
    for text, expect in (
        ("prepare:\n  ? [1, 2]\n  : 3\n", "a key must be a plain value, not a list"),
        ("prepare: !!python/object:os.system x\n", "is not allowed: plain YAML values only"),
        ("finetune_ner:\n  training:\n    <<: {epochs: 2}\n    lr: 0.1\n    lr: 0.2\n", "duplicate key 'lr'"),
    ):
        params.write_text(text)
        with pytest.raises(PipelineError, match=expect) as e:
            load_params(params)
        assert "\n" not in str(e.value)
    assert yaml.safe_load("a: 1")  # the library itself is untouched


# --- first-contact recipes ------------------------------------------------------------------------


def test_a_header_row_read_as_data_and_swapped_columns_are_recognised(tmp_path):
    base = ["finetune", "--task", "classify", "--model", "tfidf", "--out", "m", "--format", "tsv"]
    files = ["--train", SAMPLES / "train.tsv", "--dev", SAMPLES / "dev.tsv"]
    p = cli(*base, *files, "--set", "data.text_field=1", "--set", "data.label_field=0", cwd=tmp_path)
    one_line(p, "train.tsv:1: the first row (label, sentence) looks like a header", "data.header=true")
    p = cli(*base, *files, "--set", "data.text_field=1", "--set", "data.label_field=0", "--set", "data.header=true",
            cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = cli(*base[:-2], *files, "--set", "data.text_field=label", "--set", "data.label_field=sentence", "--out", "m2",
            cwd=tmp_path)  # fmt: skip
    line = one_line(p, "different labels, most of several words", "the wrong way round")
    assert len(line) < 300


def test_tag_scheme_errors_name_the_tag_line_and_the_scheme_that_reads_it(tmp_path):
    (tmp_path / "bioes.conll").write_text("John\tB-PER\nSmith\tE-PER\n.\tO\n")
    (tmp_path / "bilou.conll").write_text("Mary\tO\nJones\tU-PER\n")
    (tmp_path / "w.txt").write_text("2 3\nthe 0 0 1\nfilm 1 0 0\n")  # word2vec text format
    base = ["finetune", "--task", "ner", "--word2vec", "w.txt", "--out", "m"]
    p = cli(*base, "--train", "bioes.conll", "--dev", "bioes.conll", cwd=tmp_path)
    one_line(p, "bioes.conll:2: tag 'E-PER' does not exist in IOB2", "data.tag_scheme=bioes")
    p = cli(*base, "--train", "bilou.conll", "--dev", "bilou.conll", cwd=tmp_path)
    one_line(p, "bilou.conll:2: tag 'U-PER' is BILOU", "U- as S-")


def test_a_misspelt_flag_gets_did_you_mean_from_its_subcommand(tmp_path):
    p = cli("finetune", "--modle", "tfidf", "--train", "t", "--dev", "d", "--out", "m", cwd=tmp_path)
    one_line(p, "elmo finetune: error: unrecognized argument: --modle (did you mean '--model'?)", code=2)


def test_a_misspelt_command_and_a_flag_before_the_command_are_usage_errors(tmp_path):
    one_line(cli("finetnue", cwd=tmp_path), "unknown command 'finetnue' (did you mean 'finetune'?)", code=2)
    one_line(
        cli("--model", "m", "predict", "x.txt", cwd=tmp_path),
        "--model before the command: a command's flags go after it",
        code=2,
    )
    assert cli("-q", "predict", "--help", cwd=tmp_path).returncode == 0  # elmo's own flags stay before it


def test_a_conll_file_given_to_a_sentence_task_names_the_tasks_that_read_it(tmp_path):
    conll = REPO / "data" / "samples" / "ner" / "train.conll"
    (tmp_path / "train.txt").write_text(conll.read_text())  # a name that says nothing: the lines say it
    for train in (conll, tmp_path / "train.txt"):
        p = cli("finetune", "--task", "classify", "--model", "tfidf", "--train", train, "--dev", conll,
                "--out", "m", cwd=tmp_path)  # fmt: skip
        one_line(p, "CoNLL columns (a token and its tags per line)", "--task ner", "--task tag")


def test_an_invalid_byte_names_the_flag_that_reads_past_it(model, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    p = cli("predict", "latin1.txt", "--model", model, cwd=tmp_path)
    one_line(p, "latin1.txt: not UTF-8", "(Latin-1 or cp1252?)", "--encoding-errors replace")


def test_evaluate_and_the_card_give_per_label_scores_and_auto_says_its_candidates_first(model, tmp_path):
    p = cli("evaluate", SAMPLES / "test.tsv", "--model", model, "--metrics", "e.json", cwd=tmp_path)
    assert p.returncode == 0 and "  neutral  P " in p.stdout, p.stdout
    per = json.loads((tmp_path / "e.json").read_text())["per_label"]
    assert set(per) == {"negative", "neutral", "positive"} and {"precision", "recall", "f1", "support"} <= set(
        per["neutral"]
    )
    assert "- dev per label, precision/recall/F1 (support): " in (model / "README.md").read_text()
    from pipeline.config import load_finetune_config
    from pipeline.train.finetune import auto_plan

    plan = auto_plan(load_finetune_config(None, {"task": "classify", "training.max_minutes": 5}))
    assert plan.startswith("auto: 4 candidates, the best on dev kept: tfidf, linear, bilstm, ensemble"), plan
    assert "bilstm trains by epochs" in plan and "ends within 3x the time of tfidf, linear" in plan
    assert "within 5 min (max_minutes)" in plan


def test_bf16_counts_as_native_only_with_avx512_bf16_or_amx():
    from pipeline.cpu import native_bf16

    assert native_bf16(frozenset({"sse4_2", "avx2", "fma"})) is False  # an AVX2-only EPYC: emulated
    assert native_bf16(frozenset({"avx2", "avx512f", "avx512_bf16"})) is True
    assert native_bf16(frozenset({"avx2", "amx_bf16", "amx_tile"})) is True
    assert native_bf16(frozenset({"neon", "asimd"})) is None  # not x86: bf16 as asked


# --- sizes and saved models -----------------------------------------------------------------------


def test_sizes_beyond_reason_are_refused_before_allocation(tmp_path):
    from pipeline.config import ModelConfig, load_finetune_config, load_params
    from pipeline.cpu import available_memory, check_fits_memory
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match=r"finetune\.head\.hidden: must be at most 65,536, got 10,000,000"):
        load_finetune_config(None, {"head.hidden": 10_000_000})
    (tmp_path / "params.yaml").write_text("model:\n  cell_dim: 100000000\n")
    with pytest.raises(PipelineError, match=r"params\.yaml: model\.cell_dim: must be at most 65,536"):
        load_params(tmp_path / "params.yaml")
    huge = ModelConfig(projection_dim=16_000, cell_dim=65_000)  # within the bounds, beyond this machine
    if available_memory() is not None:
        with pytest.raises(PipelineError, match=r"about [\d,]+M parameters need about [\d,.]+ GiB .* available"):
            check_fits_memory(huge.parameter_estimate(100_000), 4, "model", "params.yaml")
    # the estimate is close to a real biLM's count (the default preset, a 5,000-word vocabulary)
    from pipeline.bilm.model import BiLM

    real = sum(p.numel() for p in BiLM(ModelConfig(), 5_000).parameters())
    assert 0.9 < ModelConfig().parameter_estimate(5_000) / real < 1.1


def test_a_saved_model_that_contradicts_itself_is_one_line_naming_it(model, tmp_path):
    import shutil

    def broken(name, change):
        d = tmp_path / name
        shutil.copytree(model, d)
        change(d)
        return one_line(cli("predict", SAMPLES / "test.tsv", "--model", d, cwd=tmp_path), name)

    def config_edit(**fields):
        def change(d):
            c = json.loads((d / "config.json").read_text())
            c.update({k: v(c) for k, v in fields.items()})
            (d / "config.json").write_text(json.dumps(c))

        return change

    assert "coef has 3 rows for 4 labels" in broken("labels", config_edit(labels=lambda c: c["labels"] + ["x"]))
    assert "model 'bilstm' disagrees" in broken("kind", config_edit(model=lambda c: "bilstm"))
    assert "needs tfidf_vocab.json, which is missing" in broken("files", lambda d: (d / "tfidf_vocab.json").unlink())
    # a single-text model told it reads pairs: its weights take a quarter of the features (was a matmul error)
    assert "its weights take 1054 features" in broken("pairs", config_edit(pairs=lambda c: True))


def test_bf16_where_pytorch_would_emulate_it_runs_in_fp32_with_one_warning(tmp_path):
    from pipeline.cpu import native_bf16

    if native_bf16() is None:
        pytest.skip("not an x86 CPU whose flags we read")
    code = "from pipeline.cpu import bf16_pays; print(bf16_pays('cpu'), bf16_pays('cpu'), bf16_pays('cuda'))"
    capped = {**env(), "ATEN_CPU_CAPABILITY": "avx2"}  # PyTorch's kernels held to AVX2, as on an AVX2-only EPYC
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=capped, cwd=REPO)
    assert p.stdout.split() == ["False", "False", "True"], p.stderr
    assert p.stderr.count("warning: bf16 is not native here") == 1  # said once


# --- a careless user's second hour (found by trying them; each was a traceback, a hang or a loss) ---


def test_a_rerun_never_deletes_a_users_file_inside_the_model_directory(model, tmp_path):
    import shutil

    T = ["--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv", "--dev", SAMPLES / "dev.tsv"]
    shutil.copytree(model, tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("precious\n")
    one_line(
        cli("finetune", *T, "--out", "m", cwd=tmp_path),
        "m: holds files a finetuned task model does not write (notes.txt)",
    )
    assert (tmp_path / "m" / "notes.txt").read_text() == "precious\n"
    one_line(cli("finetune", *T, "--out", "n", "--plots", "n/plots", cwd=tmp_path), "--plots lies inside --out")
    one_line(cli("predict", SAMPLES / "test.tsv", "--model", model, "--output", "", cwd=tmp_path), "an empty path")


def test_odd_keys_deep_json_and_values_no_axis_can_span_are_one_line(model, tmp_path):
    p = cli("finetune", "--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv",
            "--dev", SAMPLES / "dev.tsv", "--out", "m", "--set", "training.LIMITS=1", cwd=tmp_path)  # fmt: skip
    one_line(p, "finetune.training.LIMITS: unknown key")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "prepare.json").write_text("[" * 100_000 + "]" * 100_000)
    one_line(cli("report", "--metrics-dir", "metrics", cwd=tmp_path), "prepare.json: not valid JSON")
    (tmp_path / "metrics" / "evaluate_lm.json").write_text('{"test_average_ppl": NaN}')
    (tmp_path / "metrics" / "prepare.json").unlink()
    one_line(cli("report", "--metrics-dir", "metrics", cwd=tmp_path), "test_average_ppl: expected a finite number")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "curves.tsv").write_text("step\tloss\n1\t1e308\n2\t-1e308\n3\t2.5\n")
    (plots / "confusion.json").write_text(json.dumps([{"actual": "x" * 200_000, "predicted": "\ud800"}] * 3))
    start = time.time()
    p = cli("plot", plots, cwd=tmp_path)
    assert p.returncode == 0 and time.time() - start < 60, p.stderr


@pytest.mark.parametrize(
    "edit, expect",
    [
        (lambda c: c.update(labels=["a", "a", "a"]), "labels: expected a list of distinct strings"),
        (lambda c: c.update(labels="negative"), "labels: expected a list of distinct strings"),
        (lambda c: c["finetune"]["training"].update(lr=-5), "finetune.training.lr: must be positive"),
        (lambda c: c.update(format_version=True), "no format_version of 1 or more"),
    ],
)
def test_an_edited_model_config_is_checked_on_load(model, tmp_path, edit, expect):
    import shutil

    shutil.copytree(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    edit(config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    one_line(cli("predict", SAMPLES / "test.tsv", "--model", "m", cwd=tmp_path), expect)


def test_a_pipe_among_a_models_files_and_a_closed_stdout_are_one_line(model, tmp_path):
    import shutil

    shutil.copytree(model, tmp_path / "m")
    (tmp_path / "m" / "tfidf_vocab.json").unlink()
    os.mkfifo(tmp_path / "m" / "tfidf_vocab.json")
    one_line(cli("predict", SAMPLES / "test.tsv", "--model", "m", cwd=tmp_path), "tfidf_vocab.json", "not a regular")
    p = subprocess.run(
        f"{sys.executable} -m pipeline.cli evaluate {SAMPLES / 'test.tsv'} --model {model} >&-",
        shell=True, capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=120,
    )  # fmt: skip
    one_line(p, "standard output is closed", "-q")


def test_a_rerun_never_deletes_a_users_file_inside_an_encoder_or_word2vec_directory(trained, tmp_path):
    import shutil

    from pipeline.config import Word2VecConfig
    from pipeline.errors import PipelineError
    from pipeline.export import export_encoder
    from pipeline.word2vec import run_word2vec

    shutil.copytree(trained / "enc", tmp_path / "enc")
    (tmp_path / "enc" / "notes.txt").write_text("precious\n")
    with pytest.raises(PipelineError, match=r"enc: holds files an exported encoder does not write \(notes.txt\)"):
        export_encoder(trained / "model" / "best", tmp_path / "enc", trained / "prep")
    (tmp_path / "w2v").mkdir()
    run_word2vec(Word2VecConfig(vector_size=8, epochs=1), trained / "prep", tmp_path / "w2v", progress=False)
    (tmp_path / "w2v" / "notes.txt").write_text("precious\n")
    with pytest.raises(PipelineError, match=r"w2v: holds files .* does not write \(notes.txt\)"):
        run_word2vec(Word2VecConfig(vector_size=8, epochs=1), trained / "prep", tmp_path / "w2v", progress=False)
    assert (tmp_path / "enc" / "notes.txt").read_text() == (tmp_path / "w2v" / "notes.txt").read_text() == "precious\n"
