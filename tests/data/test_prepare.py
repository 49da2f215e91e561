import filecmp
import json
from collections import Counter

import numpy as np
import pytest

from pipeline.config import PrepareConfig
from pipeline.data.batching import BucketBatcher, make_batch
from pipeline.data.chars import token_char_ids
from pipeline.data.prepare import prepare_corpus
from pipeline.data.prepared import PreparedData
from pipeline.data.vocab import UNK_ID
from pipeline.errors import PipelineError

from helpers import make_corpus


def decoded(data, split):
    return [" ".join(data.types[i] for i in s) for s in data.split(split)]


def test_outputs_are_consistent(write, tmp_path):
    corpus = write("c.txt", make_corpus() + "\n   \nzyzzyva rare words here\n")
    cfg = PrepareConfig(corpus=str(corpus), valid_fraction=0.1, test_fraction=0.1, min_count=2, shard_tokens=300)
    stats = prepare_corpus(cfg, tmp_path / "out", progress=False)
    data = PreparedData(tmp_path / "out")

    texts = {s: data.text_file(s).read_text().splitlines() for s in ("train", "valid", "test")}
    # every non-blank input line lands in exactly one split
    src = [l for l in corpus.read_text().splitlines() if l.strip()]
    assert sorted(texts["train"] + texts["valid"] + texts["test"]) == sorted(src)
    assert stats["blank_lines"] == 2
    # shards decode back to the tokenized text, across several shards
    assert len(list((tmp_path / "out" / "train").glob("tokens-*.npy"))) > 1
    for s in texts:
        assert decoded(data, s) == texts[s]
        assert stats[f"{s}_sentences"] == len(texts[s])
    # vocabulary = train counts with min_count; everything else is an extra type → <UNK>
    counts = Counter(t for line in texts["train"] for t in line.split())
    assert dict(zip(data.vocab.tokens[4:], data.vocab.counts[4:])) == {t: c for t, c in counts.items() if c >= 2}
    assert stats["train_tokens"] == sum(counts.values())
    rare = data.types.index("zyzzyva") if "zyzzyva" in data.types else None
    if rare is not None:
        assert rare >= len(data.vocab) and data.targets(np.array([rare]))[0] == UNK_ID
    # char ids table matches the per-token function
    for tid in (4, 5, len(data.types) - 1):
        assert (data.char_ids[tid] == token_char_ids(data.types[tid], 50)).all()
    # oov rate on valid is measured against the vocabulary
    valid_tokens = [t for line in texts["valid"] for t in line.split()]
    oov = sum(1 for t in valid_tokens if t not in data.vocab.index) / len(valid_tokens)
    assert stats["valid_oov_rate"] == pytest.approx(oov, abs=1e-6)
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["stats"] == stats


def test_batches_from_prepared_split(write, tmp_path):
    corpus = write("c.txt", make_corpus(100))
    prepare_corpus(PrepareConfig(corpus=str(corpus)), tmp_path / "out", progress=False)
    data = PreparedData(tmp_path / "out")
    train = data.split("train")
    seen = []
    for idx in BucketBatcher(train.lengths, max_tokens=64, seed=0).batches(0):
        batch = make_batch([train.sentence(i) for i in idx], len(data.vocab), idx)
        assert batch.type_ids.numel() <= 64
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(train)))


def test_given_split_files_long_lines_and_lowercase(write, tmp_path):
    train = write("train.txt", "A b c\n" + " ".join(["w"] * 25) + "\n")
    valid = write("valid.txt", "B c d\n")
    test = write("test.txt", "\nC\n")
    cfg = PrepareConfig(
        corpus=str(train), valid=str(valid), test=str(test), max_sentence_length=10, lowercase=True, min_count=1
    )
    stats = prepare_corpus(cfg, tmp_path / "out", progress=False)
    data = PreparedData(tmp_path / "out")
    assert decoded(data, "train") == ["a b c", " ".join(["w"] * 10), " ".join(["w"] * 10), " ".join(["w"] * 5)]
    assert decoded(data, "valid") == ["b c d"] and decoded(data, "test") == ["c"]
    assert stats["long_sentences_split"] == 1 and stats["blank_lines"] == 1
    assert stats["sentence_length"]["max"] == 10
    assert stats["valid_oov_rate"] == pytest.approx(1 / 3)


def test_split_sentences_for_paragraph_corpora(write, tmp_path):
    p = write("p.txt", " = Heading = \n a b . c d ! e\n")
    cfg = PrepareConfig(corpus=str(p), valid=str(p), test=str(p), split_sentences=True)
    prepare_corpus(cfg, tmp_path / "out", progress=False)
    assert decoded(PreparedData(tmp_path / "out"), "train") == ["= Heading =", "a b .", "c d !", "e"]


def test_same_config_gives_identical_files(write, tmp_path):
    corpus = write("c.txt", make_corpus(300))
    cfg = PrepareConfig(corpus=str(corpus), split_seed=7)
    prepare_corpus(cfg, tmp_path / "a", progress=False)
    prepare_corpus(cfg, tmp_path / "b", progress=False)
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ("train", "valid", "test"):
        assert not filecmp.dircmp(tmp_path / "a" / sub, tmp_path / "b" / sub).diff_files
    # a different split seed moves sentences between splits
    prepare_corpus(PrepareConfig(corpus=str(corpus), split_seed=8), tmp_path / "c", progress=False)
    assert (tmp_path / "a" / "valid.txt").read_text() != (tmp_path / "c" / "valid.txt").read_text()


def test_sentencepiece_tokenizer_on_default_corpus(tmp_path):
    import sentencepiece as spm

    cfg = PrepareConfig(corpus="default", tokenizer="sentencepiece", sp_vocab_size=400, sp_max_sentences=500)
    stats = prepare_corpus(cfg, tmp_path / "out", progress=False)
    data = PreparedData(tmp_path / "out")
    assert data.meta["tokenizer_model"] == "tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "out" / "tokenizer.model"))
    assert sp.get_piece_size() <= 400
    first = data.text_file("train").read_text().splitlines()[0].split()
    assert first[0].startswith("▁") and len(first) > 10
    assert sp.decode_pieces(first).startswith("Hundreds of people have been forced")
    # tokens are SentencePiece pieces, except the surface form of rare characters outside its coverage
    pieces = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    non_pieces = [t for t in data.vocab.tokens[4:] if t not in pieces]
    assert len(non_pieces) < 20 and stats["vocab_size"] == len(data.vocab)


def test_bad_input_errors_and_nothing_half_written(write, tmp_path):
    out = tmp_path / "out"
    ok = write("ok.txt", "a b c\n" * 40)
    prepare_corpus(PrepareConfig(corpus=str(ok), valid=str(ok), test=str(ok)), out, progress=False)  # a previous run
    previous = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def fails(cfg, pattern):
        with pytest.raises(PipelineError, match=pattern):
            prepare_corpus(cfg, out, progress=False)
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == previous  # untouched
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temp left
        assert (out / "meta.json").is_file()

    fails(PrepareConfig(corpus=str(tmp_path / "missing.txt")), "missing.txt: corpus file not found")
    fails(PrepareConfig(corpus=str(write("e.txt", "\n  \n\n"))), "corpus is empty")
    one = write("one.txt", "just one line\n")
    fails(PrepareConfig(corpus=str(one)), "valid split is empty: no sentence was assigned")
    fails(
        PrepareConfig(corpus=str(one), valid=str(one), test=str(write("t.txt", "\n"))),
        "t.txt: file has no non-blank lines",
    )
    bad = write("bad.txt", b"ok line\n" * 50 + b"caf\xe9\n")  # latin-1 byte: invalid UTF-8
    fails(PrepareConfig(corpus=str(bad), encoding_errors="error"), r"bad\.txt:51: invalid UTF-8")
    stats = prepare_corpus(PrepareConfig(corpus=str(bad), valid=str(one), test=str(one)), out, progress=False)
    assert stats["invalid_utf8_lines_replaced"] == 1 and (out / "train.txt").read_bytes() != previous["train.txt"]


def test_refuses_to_replace_an_unrelated_directory(write, tmp_path):
    """A mistyped output path must not delete someone's directory."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    corpus = write("c.txt", make_corpus(50))
    with pytest.raises(PipelineError, match="holds files that are not this pipeline.s output; refusing to replace it"):
        prepare_corpus(PrepareConfig(corpus=str(corpus)), tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_raw_text_gets_words_without_glued_punctuation(write, tmp_path, capsys):
    """ptb (the default) splits raw English; whitespace on the same text warns and counts."""
    raw = (
        "\n".join(
            [
                "The food was good. We'll be back!",
                "Great place, didn't disappoint.",
                "Service (friendly) and fast; prices fair.",
            ]
            * 10
        )
        + "\n"
    )
    corpus = write("raw.txt", raw)
    stats = prepare_corpus(
        PrepareConfig(corpus=str(corpus), valid=str(corpus), test=str(corpus), min_count=1),
        tmp_path / "ptb",
        progress=False,
    )
    vocab = set(PreparedData(tmp_path / "ptb").vocab.tokens)
    assert {"good", ".", "back", "!", "did", "n't", "(", "friendly", ")"} <= vocab and "good." not in vocab
    assert stats["glued_punctuation_tokens"] == 0 and "warning" not in capsys.readouterr().err
    stats = prepare_corpus(
        PrepareConfig(corpus=str(corpus), valid=str(corpus), test=str(corpus), min_count=1, tokenizer="whitespace"),
        tmp_path / "ws",
        progress=False,
    )
    assert stats["glued_punctuation_tokens"] == 60  # good. back! place, disappoint. fast; fair. (x10)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "punctuation glued on" in err and "prepare.tokenizer: ptb" in err
