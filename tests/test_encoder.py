import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pipeline.bilm.model import load_bilm
from pipeline.data.prepared import PreparedData
from pipeline.encoder import Encoder, embed_file
from pipeline.errors import PipelineError
from pipeline.export import export_encoder
from pipeline.lm import perplexities
from pipeline.train.evaluate import prepared_lm_sums

from helpers import SENTS, elmo


def test_round_trip_is_bit_identical(trained, tmp_path):
    model, _ = load_bilm(trained / "model" / "best")
    model.requires_grad_(False)  # as from_pretrained leaves an encoder (PyTorch's LSTM rounds differently otherwise)
    enc = Encoder.from_pretrained(trained / "enc")
    direct = Encoder(model, enc.config, enc.vocab, enc.tokenizer)
    a, b = direct.embed(SENTS), enc.embed(SENTS)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    enc.save_pretrained(tmp_path / "again")
    c = Encoder.from_pretrained(tmp_path / "again").embed(SENTS)
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    assert [x.shape for x in a] == [(3, 5, 32), (3, 3, 32), (3, 1, 32)]
    assert np.array_equal(a[0][0][:, :16], a[0][0][:, 16:])  # token layer duplicated


def test_cache_equals_uncached_and_vocab_precompute(trained):
    plain = Encoder.from_pretrained(trained / "enc", cache_size=0).embed(SENTS)
    enc = Encoder.from_pretrained(trained / "enc", cache_size=3)
    first, again = enc.embed(SENTS), enc.embed(SENTS)  # the second call is served from the LRU
    enc.precompute_vocab()
    pinned = enc.embed(SENTS)
    assert len(enc._cache) <= 3 and len(enc._pinned) == len(enc.vocab)
    for run in (first, again, pinned):
        assert all(np.allclose(x, y, atol=1e-6, rtol=0) for x, y in zip(plain, run))


def test_vectors_do_not_depend_on_batch_companions(trained):
    enc = Encoder.from_pretrained(trained / "enc")
    alone = enc.embed([SENTS[0]])[0]
    crowd = enc.embed([["x"] * 30, SENTS[0], ["Antidisestablishmentarianism", "is", "long"]], batch_tokens=40)[1]
    assert np.allclose(alone, crowd, atol=1e-6, rtol=0)
    assert np.array_equal(enc.embed([SENTS[0]])[0], alone)  # and calls do not carry state


def test_hdf5_matches_the_api_for_every_line(trained, tmp_path):
    enc = Encoder.from_pretrained(trained / "enc")
    text = "The fire was burning .\n\nZyzzyva unseenword !\n" + " ".join(["long"] * 300) + "\n"
    (tmp_path / "in.txt").write_text(text)
    n = embed_file(enc, tmp_path / "in.txt", tmp_path / "out.h5", "all", batch_tokens=64, chunk_lines=2, progress=False)
    api = enc.embed([line.split() for line in text.splitlines()])
    with h5py.File(tmp_path / "out.h5") as f:
        assert n == 4 and sorted(f.keys()) == ["0", "1", "2", "3"]
        for i, ref in enumerate(api):
            assert f[str(i)].shape == ref.shape
            assert np.allclose(f[str(i)][()], ref, atol=1e-6, rtol=0)
        assert f["1"].shape == (3, 0, 32)  # the empty line keeps its place
    embed_file(enc, tmp_path / "in.txt", tmp_path / "top.h5", "top", progress=False)
    embed_file(enc, tmp_path / "in.txt", tmp_path / "avg.h5", "average", progress=False)
    with h5py.File(tmp_path / "top.h5") as t, h5py.File(tmp_path / "avg.h5") as a:
        assert np.allclose(t["0"][()], api[0][-1], atol=1e-6) and np.allclose(a["0"][()], api[0].mean(0), atol=1e-6)


def test_generate_is_reproducible_and_emits_vocabulary_words(trained):
    enc = Encoder.from_pretrained(trained / "enc")
    a = enc.generate("The fire", max_tokens=25, seed=7)
    assert a == enc.generate("The fire", max_tokens=25, seed=7)
    assert a != enc.generate("The fire", max_tokens=25, seed=8)
    specials = {"<PAD>", "<UNK>", "<S>", "</S>"}
    for seed in range(5):
        for w in enc.generate("", max_tokens=25, seed=seed, top_k=20, temperature=0.8):
            assert w in enc.vocab.index and w not in specials


def test_lm_score_agrees_with_training_evaluation(trained):
    enc = Encoder.from_pretrained(trained / "enc")
    data = PreparedData(trained / "prep")
    sentences = [line.split() for line in data.text_file("test").read_text().splitlines()]  # the prepared tokens
    s = enc.lm_sums(sentences)
    ref = perplexities(*prepared_lm_sums(enc.model, data, "test", 4096).tolist())
    assert s["tokens"] == ref["tokens"]
    assert np.exp(s["forward_nll"] / s["tokens"]) == pytest.approx(ref["forward_ppl"], rel=1e-4)
    assert np.exp(s["backward_nll"] / s["tokens"]) == pytest.approx(ref["backward_ppl"], rel=1e-4)


def test_without_softmax(trained, tmp_path):
    export_encoder(trained / "model" / "best", tmp_path / "e", trained / "prep")
    enc = Encoder.from_pretrained(tmp_path / "e")
    assert enc.embed(SENTS)[0].shape == (3, 5, 32)
    with pytest.raises(PipelineError, match="--with-softmax"):
        enc.generate("x")
    (tmp_path / "in.txt").write_text("a b\n")
    p = elmo("lm-score", str(tmp_path / "in.txt"), "--encoder", str(tmp_path / "e"), cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.strip() == (
        f"error: {tmp_path / 'e'}: this encoder has no softmax weights, which language-model scoring needs; "
        "export it again with `elmo export --with-softmax`"
    )


def _tamper(trained, tmp_path, edit):
    import shutil

    d = tmp_path / "t"
    shutil.copytree(trained / "enc", d)
    cfg = json.loads((d / "config.json").read_text())
    edit(d, cfg)
    if (d / "config.json").exists() and isinstance(cfg, dict):
        (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d, c: c.update(format_version=99), "format version 99 is newer than this code"),
        (lambda d, c: c["model"].update(projection_dim=24), "has shape .* config.json implies"),
        (lambda d, c: c["model"].update(n_layers=3), "weights do not match config.json"),
        (lambda d, c: c.update(vocab_size=5), "vocab.txt has .* tokens but config.json says 5"),
        (lambda d, c: c["model"].update(bogus=1), "bad or missing architecture field"),
        (lambda d, c: c.pop("format_version"), "no format_version of 1 or more"),
        (lambda d, c: (d / "model.safetensors").unlink(), r"not an exported encoder \(model.safetensors missing"),
        (lambda d, c: c["model"].update(projection_dim=64), "projection_dim: must be smaller than cell_dim"),
        (lambda d, c: c["model"].update(filters=[[1, "a"]]), "bad or missing architecture field"),
        (lambda d, c: (d / "model.safetensors").write_bytes(b"garbage"), "cannot read weights"),
    ],
)
def test_tampered_exports_fail_cleanly(trained, tmp_path, edit, message):
    d = _tamper(trained, tmp_path, edit)
    with pytest.raises(PipelineError, match=message):
        Encoder.from_pretrained(d)


def test_cli_embed_generate_lm_score_and_errors(trained, tmp_path):
    def elmo(*args):
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, cwd=tmp_path
        )

    (tmp_path / "in.txt").write_text("The fire .\n\nA new blaze .\n")
    p = elmo("-q", "embed", "in.txt", "--encoder", str(trained / "enc"), "--out", "o.h5", "--layers", "top")
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["0"].shape == (3, 32) and f["1"].shape == (0, 32)
    (tmp_path / "labelled.tsv").write_text("The fire .\tnews\nA new blaze .\tnews\n")
    p = elmo("embed", "labelled.tsv", "--encoder", str(trained / "enc"), "--out", "t.h5")
    assert p.returncode == 0 and "labelled.tsv: 2 of 2 lines hold a tab" in p.stderr and "text column alone" in p.stderr
    p = elmo("generate", "--encoder", str(trained / "enc"), "--prompt", "The fire", "--seed", "3", "--max-tokens", "5")
    assert p.returncode == 0 and p.stdout.startswith("The fire")
    p = elmo("lm-score", "in.txt", "--encoder", str(trained / "enc"), "--json", "s.json")
    assert p.returncode == 0 and json.loads((tmp_path / "s.json").read_text())["sentences"] == 2
    (tmp_path / "bad.txt").write_bytes(b"ok\nbad \xff byte\n")
    p = elmo("embed", "bad.txt", "--encoder", str(trained / "enc"), "--out", "b.h5")
    assert p.returncode == 1 and p.stderr.strip().startswith("error: bad.txt:2: invalid UTF-8")
    assert not (tmp_path / "b.h5").exists()  # nothing half-written
    (tmp_path / "notes").mkdir()
    p = elmo("embed", "in.txt", "--encoder", str(tmp_path / "notes"), "--out", "x.h5")
    assert p.returncode == 1 and "not an exported encoder" in p.stderr and "Traceback" not in p.stderr


def test_export_never_replaces_an_unrelated_directory(trained, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "notes.txt").write_text("keep me")
    with pytest.raises(PipelineError, match="refusing to replace it"):
        export_encoder(trained / "model" / "best", tmp_path / "models", trained / "prep")
    assert (tmp_path / "models" / "notes.txt").read_text() == "keep me"
    export_encoder(trained / "model" / "best", tmp_path / "enc", trained / "prep")
    export_encoder(trained / "model" / "best", tmp_path / "enc", trained / "prep")  # its own output: replaced
    enc = Encoder.from_pretrained(tmp_path / "enc")
    with pytest.raises(PipelineError, match="top-k must be at least 1"):
        Encoder.from_pretrained(trained / "enc").generate("x", top_k=0)
    assert enc.config["training"]["presets"] is None


def test_embed_mixed_with_a_scalar_mix(trained):
    from pipeline.tasks.scalar_mix import ScalarMix

    enc = Encoder.from_pretrained(trained / "enc")
    mixed = enc.embed_mixed(SENTS, ScalarMix(enc.n_layers))  # uniform weights, gamma 1 = layer average
    for m, layers in zip(mixed, enc.embed(SENTS)):
        assert m.shape == layers.shape[1:]
        assert np.allclose(m, layers.mean(axis=0), atol=1e-6)


def test_a_byte_order_mark_changes_nothing_and_is_reported(trained, tmp_path):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("the fire spread .\nNew\u0085line here\n", encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    out = {}
    for name in ("plain", "bom"):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "embed",
                f"{name}.txt",
                "--encoder",
                str(trained / "enc"),
                "--out",
                f"{name}.h5",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        with h5py.File(tmp_path / f"{name}.h5") as f:
            out[name] = [f[str(i)][()] for i in range(len(f))]
    assert len(out["bom"]) == 2 and all(np.array_equal(a, b) for a, b in zip(out["plain"], out["bom"]))
    assert out["bom"][1].shape[1] == 3  # U+0085 separated two tokens; it did not cut the line
    assert "a byte-order mark removed" in p.stdout


def test_sigterm_during_embed_is_clean(trained, tmp_path):
    """SIGTERM (and SIGHUP) stop like Ctrl-C: one line, exit 128 + signal, no temporary left behind,
    the previous output intact."""
    import signal
    import time

    (tmp_path / "big.txt").write_text("the fire spread quickly across the dry hills .\n" * 30000)
    with h5py.File(tmp_path / "out.h5", "w") as f:  # stands for an earlier output: must survive
        f.attrs["layers"], f.attrs["n_layers"], f.attrs["dim"] = "all", 3, 32
    before = (tmp_path / "out.h5").read_bytes()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "-q",
                "embed",
                "big.txt",
                "--encoder",
                str(trained / "enc"),
                "--out",
                "out.h5",
            ],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        while not list(tmp_path.glob(".out.h5.*")) and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 128 + sig, err
        assert err.strip() == f"terminated ({signal.Signals(sig).name})"
        assert not list(tmp_path.glob(".out.h5.*")) and (tmp_path / "out.h5").read_bytes() == before


def test_bf16_embeddings_stay_close_to_fp32(trained):
    fp32 = Encoder.from_pretrained(trained / "enc").embed(SENTS)
    bf16 = Encoder.from_pretrained(trained / "enc", bf16=True).embed(SENTS)
    for a, b in zip(fp32, bf16):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        assert np.abs(a[0] - b[0]).max() < 0.05 * np.abs(a[0]).max()  # the token layer: bf16 CNN and highway
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        assert cos.min() > 0.99 and not np.array_equal(a, b)  # bf16 really ran, and stayed close
    switched = Encoder.from_pretrained(trained / "enc")
    switched.embed(SENTS)
    switched.bf16 = True  # empties the token cache: no fp32 token vectors left in a bf16 run
    assert len(switched._cache) == 0
    for a, b in zip(switched.embed(SENTS), bf16):
        assert np.array_equal(a, b)
