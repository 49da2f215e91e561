import pytest

from pipeline.config import PrepareConfig, load_params
from pipeline.errors import PipelineError


def test_defaults_when_params_file_is_minimal(write):
    p = load_params(write("params.yaml", "prepare: {}\n"))
    assert p.prepare == PrepareConfig()
    assert p.presets == []


def test_unknown_key_names_file_and_key(write):
    path = write("params.yaml", "prepare:\n  corpus: x.txt\n  min_cout: 3\n")
    with pytest.raises(PipelineError) as e:
        load_params(path)
    assert str(path) in str(e.value) and "prepare.min_cout: unknown key (did you mean 'min_count'?)" in str(e.value)


def test_unknown_section(write):
    with pytest.raises(PipelineError, match=r"prepar: unknown section \(did you mean 'prepare'\?\)"):
        load_params(write("params.yaml", "prepar:\n  corpus: x\n"))


def test_a_key_unlike_any_known_one_gets_no_guess(write):
    with pytest.raises(PipelineError) as e:
        load_params(write("params.yaml", "prepare:\n  zzzz: 3\n"))
    assert "prepare.zzzz: unknown key; known keys: corpus" in str(e.value) and "did you mean" not in str(e.value)


@pytest.mark.parametrize(
    "line, expect",
    [
        ("min_count: three", "prepare.min_count: expected int, got 'three'"),
        ("min_count: 2.5", "prepare.min_count: expected int"),
        ("lowercase: 1", "prepare.lowercase: expected bool"),
        ("tokenizer: bpe", "prepare.tokenizer: expected one of 'ptb', 'whitespace', 'sentencepiece'"),
        ("max_vocab_size: [1]", "prepare.max_vocab_size: expected int or null"),
        ("corpus: 5", "prepare.corpus: expected str"),
    ],
)
def test_wrong_type_names_file_and_key(write, line, expect):
    path = write("params.yaml", f"prepare:\n  {line}\n")
    with pytest.raises(PipelineError, match="params.yaml") as e:
        load_params(path)
    assert expect in str(e.value)


def test_int_is_accepted_for_float_and_range_checked(write):
    p = load_params(write("params.yaml", "prepare:\n  valid_fraction: 0\n"))
    assert p.prepare.valid_fraction == 0.0 and isinstance(p.prepare.valid_fraction, float)
    with pytest.raises(PipelineError, match="valid_fraction: must be in"):
        load_params(write("params.yaml", "prepare:\n  valid_fraction: 1.5\n"))


def test_presets_apply_in_order_then_params_file_wins(write, tmp_path):
    presets = tmp_path / "presets"
    write("presets/a.yaml", "prepare:\n  min_count: 5\n  lowercase: true\n")
    write("presets/b.yaml", "prepare:\n  min_count: 7\n")
    p = load_params(write("params.yaml", "presets: [a, b]\nprepare:\n  lowercase: false\n"), preset_dir=presets)
    assert p.prepare.min_count == 7 and p.prepare.lowercase is False
    assert p.presets == ["a", "b"]


def test_bad_preset_errors(write, tmp_path):
    write("presets/a.yaml", "prepare:\n  min_count: x\n")
    with pytest.raises(PipelineError, match=r"no preset named 'zz'.*available: a"):
        load_params(write("params.yaml", "presets: [zz]\n"), preset_dir=tmp_path / "presets")
    with pytest.raises(PipelineError, match=r"no preset named 'ptbb' \(did you mean 'ptb'\?\)"):
        load_params(write("params.yaml", "presets: [ptbb]\n"))
    with pytest.raises(PipelineError, match=r"a\.yaml: prepare\.min_count: expected int"):
        load_params(write("params.yaml", "presets: [a]\n"), preset_dir=tmp_path / "presets")


def test_invalid_yaml_and_missing_file(write, tmp_path):
    with pytest.raises(PipelineError, match=r"params\.yaml:2: invalid YAML"):
        load_params(write("params.yaml", "prepare:\n\tcorpus: x\n"))
    with pytest.raises(PipelineError, match="config file not found"):
        load_params(tmp_path / "nope.yaml")


def test_repo_params_and_every_preset_load(tmp_path):
    from pipeline.config import PRESET_DIR, available_presets

    from conftest import REPO

    load_params(REPO / "params.yaml")
    names = available_presets(PRESET_DIR)
    assert {"ptb", "wikitext2"} <= set(names)
    for name in names:
        (tmp_path / "params.yaml").write_text(f"presets: [{name}]\n")
        load_params(tmp_path / "params.yaml")


def test_repo_params_file_leaves_dataset_keys_to_presets(tmp_path):
    """`dvc exp run -S 'presets=[ptb]'` must select PTB: params.yaml may not pin the corpus."""
    import yaml

    from conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["presets"] = ["ptb"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_params(tmp_path / "params.yaml").prepare
    assert cfg.corpus.endswith("ptb/ptb.train.txt") and cfg.test.endswith("ptb/ptb.test.txt")


def test_finetune_config_file_alone_or_as_a_copied_section(tmp_path):
    from pipeline.config import load_finetune_config

    (tmp_path / "alone.yaml").write_text("task: classify\nhead:\n  pooling: attention\n")
    (tmp_path / "section.yaml").write_text("finetune_sentiment:\n  task: classify\n  head: {pooling: attention}\n")
    for name in ("alone.yaml", "section.yaml"):
        cfg = load_finetune_config(tmp_path / name, {"head.hidden": 7})
        assert (cfg.task, cfg.head.pooling, cfg.head.hidden) == ("classify", "attention", 7)
    (tmp_path / "bad.yaml").write_text("head:\n  poolng: max\n")
    with pytest.raises(PipelineError, match=r"bad\.yaml: finetune\.head\.poolng: unknown key \(did you mean 'pooling'"):
        load_finetune_config(tmp_path / "bad.yaml")
    with pytest.raises(PipelineError, match=r"command line: finetune\.head\.hidden: expected int"):
        load_finetune_config(None, {"head.hidden": "abc"})
    with pytest.raises(
        PipelineError, match=r"finetune\.finetune_ner\.hidden: unknown key \(did you mean 'head\.hidden'"
    ):
        load_finetune_config(None, {"finetune_ner.hidden": 8})  # `--set finetune_ner.hidden=8`
    (tmp_path / "sec.yaml").write_text("finetune_ner:\n  head:\n    hiden: 8\n")
    with pytest.raises(
        PipelineError, match=r"sec\.yaml: finetune_ner\.head\.hiden: unknown key \(did you mean 'hidden'"
    ):
        load_finetune_config(tmp_path / "sec.yaml")
    (tmp_path / "typo.yaml").write_text("finetune_sentimnet:\n  head: {hidden: 8}\n")
    with pytest.raises(
        PipelineError, match=r"typo\.yaml: finetune_sentimnet: .*\(did you mean 'finetune_sentiment'\?\)"
    ):
        load_finetune_config(tmp_path / "typo.yaml")
    (tmp_path / "two.yaml").write_text("finetune_ner:\n  task: ner\nfinetune_sentiment:\n  task: classify\n")
    with pytest.raises(PipelineError, match=r"two\.yaml: finetune_ner: a finetune config holds one task's keys"):
        load_finetune_config(tmp_path / "two.yaml")
    from pipeline.cli import infer_task_of

    # a model type that learns one task names it; tfidf learns several (classify, pair, regress, ...)
    assert load_finetune_config(None, {"model": "tfidf"}, infer_task=lambda v: infer_task_of(v)[0]).task == "ner"
    assert load_finetune_config(None, {"model": "bilstm"}, infer_task=lambda v: infer_task_of(v)[0]).task == "ner"
    assert load_finetune_config(None, {"model": "majority"}, infer_task=lambda v: infer_task_of(v)[0]).task == "tag"


def test_finetune_keys_in_sections_dotted_or_nested_and_the_flat_names_say_where_they_went(tmp_path):
    from pipeline.config import load_finetune_config

    dotted = load_finetune_config(None, {"training.lr": 0.01, "training.epochs": 3, "data.label_field": 2})
    nested = load_finetune_config(None, {"training": {"lr": 0.01, "epochs": 3}, "data": {"label_field": 2}})
    assert dotted == nested and (dotted.training.lr, dotted.training.epochs, dotted.data.label_field) == (0.01, 3, 2)
    assert dotted.training.batch_size == 32  # the other keys of a section keep their defaults
    for flat, where in (("lr", "training.lr"), ("text_field", "data.text_field"), ("pooling", "head.pooling")):
        with pytest.raises(
            PipelineError, match=rf"finetune\.{flat}: unknown key \(now {where}: finetune keys are grouped"
        ):
            load_finetune_config(None, {flat: 1})
    with pytest.raises(PipelineError, match=r"finetune\.inputs: expected a mapping .* \(now inputs\.use"):
        load_finetune_config(None, {"inputs": "elmo"})  # the flat key whose name is now a section
    (tmp_path / "old.yaml").write_text("finetune_ner:\n  epochs: 3\n")  # a params.yaml section of the flat layout
    with pytest.raises(PipelineError, match=r"old\.yaml: finetune_ner\.epochs: unknown key \(now training\.epochs"):
        load_finetune_config(tmp_path / "old.yaml")
    with pytest.raises(PipelineError, match=r"finetune\.training\.lr: must be positive"):
        load_finetune_config(None, {"training.lr": 0})


def test_finetune_inputs_inferred_from_the_one_source_given(tmp_path):
    from pipeline.config import load_finetune_config

    def use(overrides, path=None, infer=True):
        return load_finetune_config(path, overrides, infer_inputs=infer).inputs.use

    assert use({"inputs.encoder": "enc"}) == "elmo"
    assert use({"inputs.word2vec": "v.bin"}) == "word2vec"
    assert use({"inputs.encoder": "e", "inputs.word2vec": "v"}) == "both"
    assert use({"inputs.encoder": "enc"}, infer=False) == "both"  # only the CLI infers
    (tmp_path / "s.yaml").write_text("finetune_ner:\n  inputs:\n    word2vec: v.bin\n")  # a copied section counts too
    assert use({}, tmp_path / "s.yaml") == "word2vec"
    assert use({"inputs.use": "both", "inputs.encoder": "e"}, tmp_path / "s.yaml") == "both"


@pytest.mark.parametrize(
    "text, expect",
    [
        ("pretrain:\n  lr: .nan\n", "pretrain.lr: must be a finite number, got nan"),
        ("pretrain:\n  max_minutes: .inf\n", "pretrain.max_minutes: must be a finite number, got inf"),
        ("pretrain:\n  weight_decay: -1\n", "pretrain.weight_decay: must be >= 0, got -1.0"),
        ("pretrain:\n  adagrad_init_acc: -5\n", "pretrain.adagrad_init_acc: must be positive, got -5.0"),
        ("pretrain:\n  grad_clip: -3\n", "pretrain.grad_clip: must be positive or null, got -3.0"),
        ("model:\n  cell_clip: -3\n", "model.cell_clip: must be positive or null, got -3.0"),
        ("pretrain:\n  seed: 99999999999999999999999\n", "pretrain.seed: must be between 0 and 4294967295"),
        ("finetune_ner:\n  training: {seed: -1}\n", "finetune_ner.training.seed: must be between 0 and 4294967295"),
        ("prepare:\n  max_chars: 3\n", "model.filters: a filter of width 5 is wider than a token's 3 character ids"),
        (
            "prepare:\n  min_count: 2\nprepare:\n  lowercase: true\n",
            ":3: invalid YAML: duplicate key 'prepare' (first on line 1)",
        ),
        ("pretrain:\n  lr: 0.1\n  lr: 0.2\n", ":3: invalid YAML: duplicate key 'lr' (first on line 2)"),
    ],
)
def test_values_that_would_crash_or_mislead_later_are_refused_with_file_and_key(write, text, expect):
    path = write("params.yaml", text)
    with pytest.raises(PipelineError) as e:
        load_params(path)
    assert str(path) in str(e.value) and expect in str(e.value), str(e.value)


def test_exponent_floats_without_a_dot_are_floats(write):
    p = load_params(write("params.yaml", "pretrain:\n  lr: 1e-3\n  weight_decay: 5E-5\n"))
    assert p.pretrain.lr == 0.001 and p.pretrain.weight_decay == 5e-5


def test_adaptive_cutoffs_beyond_the_vocabulary_are_refused_when_the_model_is_built():
    from pipeline.bilm.model import build_bilm

    cfg = {
        "model": {"softmax": "adaptive", "adaptive_cutoffs": [50, 500], "projection_dim": 8, "cell_dim": 16},
        "vocab_size": 100,
    }
    with pytest.raises(PipelineError, match="adaptive_cutoffs: 500 is not below the vocabulary size 100"):
        build_bilm(cfg, "enc/config.json")
    cfg = {
        "model": {"filters": [[1, 4], [9, 4]], "projection_dim": 8, "cell_dim": 16},
        "vocab_size": 100,
        "max_chars": 5,
    }
    with pytest.raises(PipelineError, match="enc/config.json: model.filters: a filter of width 9"):
        build_bilm(cfg, "enc/config.json")
