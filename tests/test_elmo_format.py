"""ELMo weight files (bilm-tf / AllenNLP): import against the reference activations of the original
TensorFlow bilm, round trips, refusals, and finetuning on an imported encoder."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from pipeline.bilm.bodies import lstm_layer_from_state
from pipeline.cli import main
from pipeline.elmo_format import import_elmo, read_options
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError

from conftest import REPO, shared

FIXTURE = ("allennlp-elmo-fixture",)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The fixture's weights imported once: (encoder directory, sentences, reference arrays)."""
    d = tmp_path_factory.mktemp("elmo")
    import_elmo(shared(*FIXTURE, "options.json"), shared(*FIXTURE, "lm_weights.hdf5"), d / "enc")
    sentences = json.loads(shared(*FIXTURE, "sentences.json").read_text())
    refs = []
    for k in range(3):  # group k: sentence i, (2, n, P) [forward, backward] → (n, 2P)
        with h5py.File(shared(*FIXTURE, f"lm_embeddings_{k}.hdf5"), "r") as f:
            refs.append([np.concatenate([f[str(i)][0], f[str(i)][1]], axis=-1) for i in range(10)])
    return d / "enc", sentences, refs


def close(ours, ref):
    """The upstream test's comparison: numpy.allclose(..., atol=1e-6)."""
    return ours.shape == ref.shape and np.allclose(ours, ref, atol=1e-6)


def test_first_sentences_match_the_tensorflow_reference(imported):
    """Sentence 0 of each group started from zero state upstream: our stateless encoder, as users run it."""
    enc_dir, sentences, refs = imported
    enc = Encoder.from_pretrained(enc_dir)
    assert enc.model.uses_scan(torch.zeros(1)) and enc.model.cfg.cell_clip == 3.0  # the clipped path
    top = enc.embed([sentences[k][0].split() for k in range(3)])
    for k in range(3):
        assert close(top[k][-1], refs[k][0]), np.abs(top[k][-1] - refs[k][0]).max()


def run_stack(stack, x, state):
    """One direction's stack from carried states (ELMo residuals), as AllenNLP's stateful biLM."""
    new = []
    for layer_index, layer in enumerate(stack.layers):
        out, h, c = lstm_layer_from_state(x, layer, *state[layer_index])
        x = out + x if layer_index > 0 else out
        new.append((h, c))
    return x, new


def test_all_thirty_sentences_match_with_the_carried_state_replayed(imported):
    """Upstream ran batch i = (sentence i of each group) through a stateful biLM, so sentence i
    started from the state sentence i-1 of its group ended with; replaying it proves the full
    recurrence (both directions, both layers, clipping) on all 30 references."""
    enc_dir, sentences, refs = imported
    enc = Encoder.from_pretrained(enc_dir)
    m = enc.model
    zero = [(torch.zeros(1, m.cfg.projection_dim), torch.zeros(1, m.cfg.cell_dim))] * m.cfg.n_layers
    for k in range(3):
        fwd_state, bwd_state = zero, zero
        for i in range(10):
            tokens = ["<S>", *sentences[k][i].split(), "</S>"]
            x = enc.token_vectors(tokens)[None]  # (1, T, P)
            f, fwd_state = run_stack(m.forward_stack, x, fwd_state)
            b, bwd_state = run_stack(m.backward_stack, x.flip(1), bwd_state)
            top = torch.cat([f, b.flip(1)], dim=-1)[0, 1:-1].numpy()
            assert close(top, refs[k][i]), (k, i, np.abs(top - refs[k][i]).max())
    # and the replay is no looser than the stateless path: zero state gives the encoder's vectors
    x = enc.token_vectors(["<S>", "a", "b", "</S>"])[None]
    f, _ = run_stack(m.forward_stack, x, zero)
    assert torch.allclose(f[0, 1:-1], torch.from_numpy(enc.embed([["a", "b"]])[0][-1, :, :16]), atol=1e-6)


def datasets(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        return {n: f[n][...] for n in names}


def test_hdf5_to_ours_to_hdf5_gives_identical_arrays(imported, tmp_path):
    enc_dir, _, _ = imported
    assert main(["-q", "export", "--format", "elmo", str(enc_dir), str(tmp_path / "out")]) == 0
    original, written = datasets(shared(*FIXTURE, "lm_weights.hdf5")), datasets(tmp_path / "out" / "weights.hdf5")
    assert sorted(original) == sorted(written) and len(original) == 33
    for name, value in original.items():
        assert written[name].dtype == value.dtype and np.array_equal(written[name], value), name
    # the options read back to the same architecture, and have every key AllenNLP reads without a default
    assert read_options(tmp_path / "out" / "options.json") == read_options(shared(*FIXTURE, "options.json"))
    lstm = json.loads((tmp_path / "out" / "options.json").read_text())["lstm"]
    assert {"cell_clip", "proj_clip", "use_skip_connections", "dim", "projection_dim", "n_layers"} <= set(lstm)


def test_ours_to_hdf5_to_ours_agrees(trained, tmp_path):
    """A biLM trained here (no clipping) → ELMo files → imported again: the same vectors."""
    assert main(["-q", "export", "--format", "elmo", str(trained / "model" / "best"), str(tmp_path / "elmo")]) == 0
    assert (
        main(
            [
                "-q",
                "import-elmo",
                str(tmp_path / "elmo" / "options.json"),
                str(tmp_path / "elmo" / "weights.hdf5"),
                str(tmp_path / "back"),
            ]
        )
        == 0
    )
    ours, back = Encoder.from_pretrained(trained / "enc"), Encoder.from_pretrained(tmp_path / "back")
    sents = [["the", "minister", "said", "."], ["a", "b", "c", "d", "e", "f", "g"]]
    for a, b in zip(ours.embed(sents), back.embed(sents)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-6
    assert back.vocab is None and not back.has_softmax


def test_skip_connections_and_tanh_are_read_and_written(tmp_path):
    """Options that bilm-tf allows beside the released ones survive the round trip and are used."""
    from pipeline.bilm.model import BiLM
    from pipeline.config import ModelConfig
    from pipeline.elmo_format import arrays_from_state, options_of, state_from_arrays

    cfg = ModelConfig(
        filters=[[1, 4], [2, 4]],
        n_highway=1,
        projection_dim=8,
        cell_dim=16,
        char_activation="tanh",
        skip_connections=False,
        dropout=0.0,
        softmax="full",
    )
    (tmp_path / "o.json").write_text(json.dumps(options_of(cfg, 20)))
    read, max_chars = read_options(tmp_path / "o.json")
    assert (read.char_activation, read.skip_connections, max_chars) == ("tanh", False, 20)
    torch.manual_seed(0)
    model = BiLM(cfg, 0).eval()
    again = BiLM(read, 0).eval()
    again.load_state_dict(state_from_arrays(arrays_from_state(model.state_dict(), cfg), cfg))
    chars, index, mask = torch.randint(0, 261, (3, 6)), torch.tensor([[0, 1, 2, 1]]), torch.ones(1, 4, dtype=torch.bool)
    a, b = model(chars, index, mask).layers, again(chars, index, mask).layers
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))
    with_skip = BiLM(ModelConfig(**{**cfg.__dict__, "skip_connections": True}), 0).eval()
    with_skip.load_state_dict(model.state_dict())
    assert not torch.allclose(with_skip(chars, index, mask).layers[2], a[2])  # the switch changes layer 2


def test_export_refuses_what_the_format_cannot_hold(trained, tmp_path):
    from pipeline.bilm.model import BiLM
    from pipeline.config import ModelConfig
    from pipeline.data.tokenizers import WhitespaceTokenizer

    enc = Encoder.from_pretrained(trained / "enc")
    gru = ModelConfig(filters=[[1, 4]], n_highway=0, projection_dim=8, cell_dim=16, body="gru")
    config = {**enc.config, "model": gru.__dict__}
    Encoder(BiLM(gru, enc.model.vocab_size), config, enc.vocab, WhitespaceTokenizer()).save_pretrained(tmp_path / "gru")
    with pytest.raises(PipelineError, match="a gru body cannot be written in the ELMo format"):
        main(["export", "--format", "elmo", str(tmp_path / "gru"), str(tmp_path / "out")])
    with pytest.raises(SystemExit) as usage:  # a usage error, exit 2
        main(["export", "--format", "elmo", "--with-softmax", str(trained / "enc"), str(tmp_path / "out")])
    assert usage.value.code == 2 and not (tmp_path / "out").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match="refusing to replace it"):
        main(["export", "--format", "elmo", str(trained / "enc"), str(tmp_path / "taken")])
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    # a folder of downloaded ELMo files is not an earlier export of ours: never replaced
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    shutil.copy(shared(*FIXTURE, "options.json"), downloaded / "options.json")
    shutil.copy(shared(*FIXTURE, "lm_weights.hdf5"), downloaded / "weights.hdf5")
    (downloaded / "README.md").write_text("where I got it")
    with pytest.raises(PipelineError, match="refusing to replace it"):
        main(["export", "--format", "elmo", str(trained / "enc"), str(downloaded)])
    assert sorted(p.name for p in downloaded.iterdir()) == ["README.md", "options.json", "weights.hdf5"]
    # a saved biLM whose prepared data is elsewhere: --prepared, or one line saying so
    best = tmp_path / "best"
    shutil.copytree(trained / "model" / "best", best)
    config = json.loads((best / "config.json").read_text())
    (best / "config.json").write_text(json.dumps({**config, "prepared_dir": str(tmp_path / "gone")}))
    with pytest.raises(PipelineError, match="pass --prepared DIR"):
        main(["export", "--format", "elmo", str(best), str(tmp_path / "out")])
    assert (
        main(
            ["-q", "export", "--format", "elmo", str(best), str(tmp_path / "out"), "--prepared", str(trained / "prep")]
        )
        == 0
    )


def broken_copies(tmp_path):
    """(name, options path, weights path, the file at fault, message) for every kind of bad input."""
    options = json.loads(shared(*FIXTURE, "options.json").read_text())
    good_options, good_weights = shared(*FIXTURE, "options.json"), shared(*FIXTURE, "lm_weights.hdf5")

    def opts(name, change):
        o = json.loads(json.dumps(options))
        change(o)
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(o))
        return p

    def weights(name, change):
        arrays = datasets(good_weights)
        change(arrays)
        p = tmp_path / f"{name}.hdf5"
        with h5py.File(p, "w") as f:
            for n, v in arrays.items():
                f.create_dataset(n, data=v)
        return p

    (tmp_path / "malformed.json").write_text('{"lstm": {')
    (tmp_path / "garbage.hdf5").write_bytes(b"not an hdf5 file\n" * 10)
    cell = "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"
    O, W = "options", "weights"  # which file the message must name first
    return [
        ("missing options", tmp_path / "none.json", good_weights, O, "options file not found"),
        ("options a directory", tmp_path, good_weights, O, "is a directory"),
        ("weights given first", good_weights, good_options, O, "is an HDF5 file, not options JSON: give the options"),
        ("malformed options", tmp_path / "malformed.json", good_weights, O, "not a readable JSON options file"),
        ("missing key", opts("nokey", lambda o: o["lstm"].pop("dim")), good_weights, O, "lstm.dim missing"),
        (
            "wrong type",
            opts("type", lambda o: o["lstm"].update(n_layers="2")),
            good_weights,
            O,
            "lstm.n_layers must be int",
        ),
        (
            "zero layers",
            opts("zero", lambda o: o["lstm"].update(n_layers=0)),
            good_weights,
            O,
            "lstm.n_layers must be at least 1",
        ),
        (
            "unknown activation",
            opts("act", lambda o: o["char_cnn"].update(activation="gelu")),
            good_weights,
            O,
            "activation 'gelu' is unknown",
        ),
        ("word inputs", opts("words", lambda o: o.pop("char_cnn")), good_weights, O, "only character-input"),
        (
            "tokens narrower than a filter",
            opts("narrow", lambda o: o["char_cnn"].update(max_characters_per_token=4)),
            good_weights,
            O,
            "char_cnn.max_characters_per_token must be at least 5",
        ),
        (
            "options of a bigger model",
            opts("bigger", lambda o: o["lstm"].update(dim=128)),
            good_weights,
            W,
            "has shape (32, 256), options.json implies (32, 512)",
        ),
        (
            "options of a smaller model",
            opts("fewer", lambda o: o["lstm"].update(n_layers=1)),
            good_weights,
            W,
            "Cell1/LSTMCell/B is not implied by options.json",
        ),
        ("missing weights", good_options, tmp_path / "none.hdf5", W, "weight file not found"),
        ("weights a directory", good_options, tmp_path, W, "is a directory"),
        ("not hdf5", good_options, tmp_path / "garbage.hdf5", W, "not a readable HDF5 file"),
        ("missing dataset", good_options, weights("nodata", lambda a: a.pop(cell)), W, f"dataset {cell} missing"),
        (
            "wrong shape",
            good_options,
            weights("shape", lambda a: a.update(char_embed=np.zeros((262, 4), np.float32))),
            W,
            "char_embed has shape (262, 4)",
        ),
        (
            "NaN",
            good_options,
            weights("nan", lambda a: a["CNN_proj/W_proj"].__setitem__((0, 0), np.nan)),
            W,
            "CNN_proj/W_proj holds NaN",
        ),
    ]


def test_bad_input_is_one_line_naming_file_and_key_and_writes_nothing(tmp_path):
    for name, options, weights, fault, message in broken_copies(tmp_path):
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        with pytest.raises(PipelineError) as e:
            import_elmo(options, weights, out)
        text = str(e.value)
        assert message in text and "\n" not in text, (name, text)
        assert text.startswith(f"{options if fault == 'options' else weights}: "), (name, text)
        assert not out.exists() and not any(p.name.startswith(f".{out.name}") for p in tmp_path.iterdir()), name


def test_the_cli_exits_1_with_one_line(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "import-elmo",
            str(tmp_path / "none.json"),
            str(tmp_path / "w.hdf5"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 1 and p.stderr == f"error: {tmp_path / 'none.json'}: options file not found\n"


def test_finetune_on_the_imported_encoder_runs_end_to_end(imported, tmp_path):
    """`elmo finetune --encoder <imported>` on the embedded NER sample, then predict with the model."""
    enc_dir, _, _ = imported
    ner = REPO / "data" / "samples" / "ner"
    args = [
        "-q",
        "finetune",
        "--task",
        "ner",
        "--train",
        str(ner / "train.conll"),
        "--dev",
        str(ner / "dev.conll"),
        "--test",
        str(ner / "test.conll"),
        "--encoder",
        str(enc_dir),
        "--inputs",
        "elmo",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "ner"),
        "--metrics",
        str(tmp_path / "m.json"),
    ]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["epochs_run"] == 2 and "f1" in metrics["test"]
    assert len(metrics["scalar_mix"]["weights"]) == 3  # the mix over the imported biLM's L + 1 layers
    (tmp_path / "in.txt").write_text("Peter Blackburn visited Brussels .\n")
    assert (
        main(
            [
                "-q",
                "predict",
                str(tmp_path / "in.txt"),
                "--model",
                str(tmp_path / "ner"),
                "--output",
                str(tmp_path / "p.jsonl"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "p.jsonl").read_text())["tokens"] == [
        "Peter",
        "Blackburn",
        "visited",
        "Brussels",
        ".",
    ]
