"""A GRU and a TCN biLM go through pretraining, export, the Encoder and finetuning like the LSTM."""

import pytest

from pipeline.config import ModelConfig, PrepareConfig, PretrainConfig
from pipeline.data.corpus import read_corpus
from pipeline.data.prepare import prepare_corpus
from pipeline.encoder import Encoder
from pipeline.export import export_encoder
from pipeline.train.finetune import finetune
from pipeline.train.pretrain import pretrain

from conftest import REPO
from helpers import finetune_cfg

SAMPLES = REPO / "data" / "samples" / "sentiment"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("bodies")
    (d / "c.txt").write_text("\n".join(line.text for line in list(read_corpus("default"))[:60]) + "\n")
    prepare_corpus(PrepareConfig(corpus=str(d / "c.txt"), min_count=1), d / "prep", progress=False)
    return d / "prep"


@pytest.mark.parametrize("body, layers", [("gru", 3), ("tcn", 3)])
def test_body_pretrains_exports_embeds_and_finetunes(prepared, tmp_path, body, layers):
    mc = ModelConfig(
        filters=[[1, 4], [2, 4], [3, 8]],
        projection_dim=8,
        cell_dim=16,
        body=body,
        n_layers=4 if body == "tcn" else 2,
        tcn_outputs=2,
    )
    m = pretrain(
        mc,
        PretrainConfig(max_tokens=400, max_steps=6, eval_every=6, checkpoint_every=6),
        prepared,
        tmp_path / "run",
        progress=False,
    )
    assert m["steps"] == 6
    export_encoder(tmp_path / "run" / "best", tmp_path / "enc", prepared)
    enc = Encoder.from_pretrained(tmp_path / "enc")
    assert enc.model.cfg.body == body and enc.n_layers == layers
    assert enc.embed(["the market fell", "a"])[0].shape == (layers, 3, 16)
    cfg = finetune_cfg(
        task="classify",
        train=str(SAMPLES / "train.tsv"),
        dev=str(SAMPLES / "dev.tsv"),
        inputs="elmo",
        encoder=str(tmp_path / "enc"),
        hidden=8,
        epochs=1,
        batch_size=32,
        model="bilstm",
    )
    r = finetune(cfg, tmp_path / "task", progress=False)
    assert len(r["scalar_mix"]["weights"]) == layers
