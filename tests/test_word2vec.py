import os
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from pipeline.config import PrepareConfig, Word2VecConfig
from pipeline.data.prepare import prepare_corpus
from pipeline.errors import PipelineError
from pipeline.word2vec import (
    VectorLookup,
    evaluate_analogies,
    evaluate_pairs,
    load_vectors,
    train_word2vec,
)

from helpers import TOY, kv_from

ANALOGIES = """: family
man woman king queen
man woman boy girl
king queen man boy
: gram1-plural
woman man queen king
man woman cat dog
only three words
"""


def test_analogies_on_a_hand_made_file(write):
    """By hand (unit vectors, 3CosAdd, inputs excluded):
    woman-man+king → queen ✓; woman-man+boy → girl ✓; queen-king+man = (0,.29,.71,0) → woman ✗ (boy);
    man-woman+queen → king ✓; 'cat dog' out of vocabulary; 'only three words' malformed.
    """
    path = write("q.txt", ANALOGIES)
    res = evaluate_analogies(kv_from(TOY), path)
    assert res.sections == {"family": [2, 3], "gram1-plural": [1, 1]}
    s = res.summary()
    assert s["accuracy"] == 0.75 and s["semantic"] == round(2 / 3, 6) and s["syntactic"] == 1.0
    assert s["oov_rate"] == 0.2 and s["malformed_lines"] == 1 and s["evaluated"] == 4
    # gensim's own evaluation agrees on the score
    score, _ = kv_from(TOY).evaluate_word_analogies(str(path))
    assert score == 0.75


def test_pairs_on_a_hand_made_file(write):
    # cos(man, woman)=0, cos(king, queen)=.5, cos(girl, girl)=1; gold ranks (2,1,3) vs model (1,2,3):
    # rho = 1 - 6*(1+1+0)/(3*(9-1)) = 0.5
    path = write("p.tsv", "# comment\nman\twoman\t5\nKing\tqueen\t1\ngirl\tgirl\t10\ncat\tdog\t3\nbroken line\n")
    r = evaluate_pairs(kv_from(TOY), path)
    assert r["spearman"] == pytest.approx(0.5) and r["pairs"] == 3
    assert r["oov_rate"] == 0.25 and r["malformed_lines"] == 1


def test_question_before_header_is_an_error(write):
    with pytest.raises(PipelineError, match=r"q\.txt:1: question before any ': section' header"):
        evaluate_analogies(kv_from(TOY), write("q.txt", "man woman king queen\n"))


@pytest.fixture(scope="module")
def lee(tmp_path_factory):
    """The embedded real corpus, prepared once, and a skip-gram model trained on it."""
    out = tmp_path_factory.mktemp("lee") / "prepared"
    prepare_corpus(PrepareConfig(corpus="default"), out, progress=False)
    model, stats = train_word2vec(out / "train.txt", Word2VecConfig(epochs=15, seed=3), progress=False)
    return out, model, stats


def test_neighbours_beat_chance(lee):
    """Top-10 neighbours of frequent words share a sentence with them far more often than random words."""
    out, model, _ = lee
    kv = model.wv
    sentences = [line.split() for line in (out / "train.txt").read_text().splitlines()]
    where = defaultdict(set)
    for i, s in enumerate(sentences):
        for w in s:
            where[w].add(i)
    probes = [w for w in kv.index_to_key if w.isalpha() and len(w) > 4][:20]
    rng = np.random.default_rng(0)
    near_rate, chance_rate = [], []
    for p in probes:
        near = [w for w, _ in kv.most_similar(p, topn=10)]
        rand = list(rng.choice(kv.index_to_key, size=10, replace=False))
        near_rate.append(np.mean([bool(where[p] & where[w]) for w in near]))
        chance_rate.append(np.mean([bool(where[p] & where[w]) for w in rand]))
    assert np.mean(near_rate) > 2 * np.mean(chance_rate)
    assert np.mean(near_rate) > 0.5


def test_our_evaluation_matches_gensims_on_a_trained_model(lee):
    from gensim.test.utils import datapath

    kv = lee[1].wv
    ours = evaluate_analogies(kv, datapath("questions-words.txt"))
    score, sections = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    assert ours.summary()["accuracy"] == pytest.approx(score, abs=1e-6)
    for sec in sections[:-1]:
        assert ours.sections[sec["section"]] == [len(sec["correct"]), len(sec["correct"]) + len(sec["incorrect"])]
    for name in ("wordsim353.tsv", "simlex999.txt"):
        _, spearman, oov = kv.evaluate_word_pairs(datapath(name))
        r = evaluate_pairs(kv, datapath(name))
        assert r["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
        assert r["oov_rate"] * 100 == pytest.approx(oov, abs=1e-4)


def test_same_seed_one_worker_identical_vectors_across_processes(lee, tmp_path):
    out, model, _ = lee
    cfg = Word2VecConfig(epochs=15, seed=3)
    again, _ = train_word2vec(out / "train.txt", cfg, progress=False)
    assert np.array_equal(model.wv.vectors, again.wv.vectors)
    # a fresh interpreter with another hash seed: gensim's default hashfxn would differ here
    code = (
        "import sys, numpy as np; from pipeline.config import Word2VecConfig;"
        "from pipeline.word2vec import train_word2vec;"
        "m, _ = train_word2vec(sys.argv[1], Word2VecConfig(epochs=15, seed=3), progress=False);"
        "m.wv.save_word2vec_format(sys.argv[2], binary=True)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(out / "train.txt"), str(tmp_path / "v.bin")], env=env, check=True)
    other = load_vectors(tmp_path / "v.bin")
    assert other.index_to_key == model.wv.index_to_key
    assert np.array_equal(other.vectors, model.wv.vectors)
    different, _ = train_word2vec(out / "train.txt", Word2VecConfig(epochs=15, seed=4), progress=False)
    assert not np.array_equal(different.wv.vectors, model.wv.vectors)


def test_aligned_matrix_and_oov_rule():
    kv = kv_from({"the": [1.0, 2.0, 3.0], "Paris": [0.5, 0.5, 0.5], "x": [-1.0, 0.0, 1.0]})
    tokens = ["<PAD>", "<UNK>", "The", "the", "Paris", "paris", "zebra"]
    m, how = VectorLookup(kv, "random", seed=1).matrix(tokens)
    assert m.shape == (7, 3) and m.dtype == np.float32
    assert (m[0] == 0).all()  # <PAD>
    assert (m[2] == kv["the"]).all() and (m[3] == kv["the"]).all()  # lower-cased fallback
    assert (m[4] == kv["Paris"]).all()
    assert how == {"exact": 2, "lower": 1, "random": 3, "zero": 1}  # paris has no lower-cased entry
    again, _ = VectorLookup(kv, "random", seed=1).matrix(tokens)
    assert np.array_equal(m, again)  # fixed random vectors
    assert not np.array_equal(m[5], m[6])
    z, how = VectorLookup(kv, "zero").matrix(tokens)
    assert (z[[0, 1, 5, 6]] == 0).all() and how["zero"] == 4


def test_bad_inputs(write, tmp_path):
    with pytest.raises(PipelineError, match="corpus is empty"):
        train_word2vec(write("empty.txt", "\n\n"), Word2VecConfig(), progress=False)
    with pytest.raises(PipelineError, match="no word occurs at least word2vec.min_count=5"):
        train_word2vec(write("rare.txt", "a b c\nd e f\n"), Word2VecConfig(min_count=5), progress=False)
    with pytest.raises(PipelineError, match=r"notvec\.txt:1: not word2vec format"):
        load_vectors(write("notvec.txt", "hello world\n"))
    with pytest.raises(PipelineError, match=r"short\.txt: not a word2vec text or binary file"):
        load_vectors(write("short.txt", "3 2\na 1.0 2.0\nb 1.0\n"))
    with pytest.raises(PipelineError, match="vector file not found"):
        load_vectors(tmp_path / "nope.bin")
    kv = kv_from(TOY)
    kv.save_word2vec_format(str(tmp_path / "toy.txt"), binary=False)
    kv.save_word2vec_format(str(tmp_path / "toy.bin"), binary=True)
    for name in ("toy.txt", "toy.bin"):
        assert np.array_equal(load_vectors(tmp_path / name).vectors, kv.vectors)


def test_stage_outputs_are_byte_identical_across_runs(lee, tmp_path):
    """Same inputs and seed → the same bytes in every output file (no timestamps inside), so a
    forced re-run of the stage leaves dvc.lock's hashes as they were."""
    from pipeline.word2vec import run_word2vec

    out, _, _ = lee
    cfg = Word2VecConfig(epochs=2, seed=3)
    for name in ("a", "b"):
        run_word2vec(cfg, out.parent / "prepared", tmp_path / name, progress=False)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "vectors.kv" in files and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
