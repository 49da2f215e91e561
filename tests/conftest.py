import os
from pathlib import Path

import pytest

from helpers import REPO

SHARED_DATA = REPO.parent / "shared" / "data"

# Never reach for the network from tests (Hugging Face hub, DVC analytics).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def write(tmp_path):
    """write("name.txt", text) -> Path, relative to the test's tmp dir."""

    def _write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
        return p

    return _write


def shared(*parts: str) -> Path:
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small biLM trained briefly on 200 real sentences, exported with its softmax (built once
    per test run): ``d/prep`` prepared data, ``d/model`` the pretraining output, ``d/enc`` the encoder."""
    from pipeline.config import ModelConfig, PrepareConfig, PretrainConfig
    from pipeline.data.corpus import read_corpus
    from pipeline.data.prepare import prepare_corpus
    from pipeline.export import export_encoder
    from pipeline.train.pretrain import pretrain

    d = tmp_path_factory.mktemp("export")
    lines = [line.text for line in read_corpus("default")][:200]
    (d / "c.txt").write_text("\n".join(lines) + "\n")
    prepare_corpus(
        PrepareConfig(corpus=str(d / "c.txt"), valid_fraction=0.1, test_fraction=0.1, min_count=2),
        d / "prep",
        progress=False,
    )
    mc = ModelConfig(filters=[[1, 4], [2, 4], [3, 8]], n_highway=1, projection_dim=16, cell_dim=32, dropout=0.1)
    pretrain(
        mc,
        PretrainConfig(max_tokens=600, max_steps=15, eval_every=15, checkpoint_every=15),
        d / "prep",
        d / "model",
        progress=False,
    )
    export_encoder(d / "model" / "best", d / "enc", d / "prep", with_softmax=True)
    return d


@pytest.fixture(scope="session")
def vectors(tmp_path_factory):
    """Tiny word2vec vectors (word2vec binary format) trained on the shipped sample texts with gensim."""
    from gensim.models import Word2Vec

    samples = REPO / "data" / "samples"
    d = tmp_path_factory.mktemp("w2v")
    sents = [line.split()[0] for line in (samples / "ner" / "train.conll").read_text().splitlines() if line.strip()]
    text = [sents[i : i + 12] for i in range(0, len(sents), 12)]
    text += [line.split("\t")[1].split() for line in (samples / "sentiment" / "train.tsv").read_text().splitlines()[1:]]
    model = Word2Vec(text, vector_size=8, min_count=1, workers=1, seed=1, epochs=2)
    model.wv.save_word2vec_format(str(d / "v.bin"), binary=True)
    return d / "v.bin"


@pytest.fixture(scope="session")
def twenty(tmp_path_factory):
    """The first 20 sentences of the embedded real corpus, prepared as train = valid = test."""
    from pipeline.config import PrepareConfig
    from pipeline.data.corpus import read_corpus
    from pipeline.data.prepare import prepare_corpus

    d = tmp_path_factory.mktemp("twenty")
    lines = [line.text for line in read_corpus("default")][:20]
    (d / "c.txt").write_text("\n".join(lines) + "\n")
    c = str(d / "c.txt")
    prepare_corpus(PrepareConfig(corpus=c, valid=c, test=c, min_count=1), d / "prep", progress=False)
    return d / "prep"
