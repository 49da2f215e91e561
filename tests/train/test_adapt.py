"""Domain-adaptive LM tuning: a biLM trained on news continues on other text, held-out perplexity
there drops, the adapted encoder keeps the vocabulary and softmax; sources that cannot be adapted
are refused with one line."""

import json

import pytest

from pipeline.cli import main
from pipeline.config import PretrainConfig
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError
from pipeline.train.adapt import adapt

from conftest import REPO


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    """The NER sample's sentences (CoNLL news of another source) as plain text, one a line."""
    blocks = (REPO / "data" / "samples" / "ner" / "train.conll").read_text().split("\n\n")
    lines = [" ".join(row.split()[0] for row in b.splitlines() if row.strip()) for b in blocks]
    p = tmp_path_factory.mktemp("domain") / "domain.txt"
    p.write_text("\n".join(line for line in lines if line and line != "-DOCSTART-") + "\n")
    return p


def test_adapting_lowers_held_out_perplexity_and_keeps_the_vocabulary(trained, domain, tmp_path):
    cfg = PretrainConfig(max_tokens=600, max_steps=20, eval_every=10, checkpoint_every=10, lr=3e-3)
    r = adapt(trained / "enc", str(domain), tmp_path / "adapted", cfg, progress=False)
    assert r["valid_ppl_after"] < 0.8 * r["valid_ppl_before"] and r["steps"] == 20
    src, out = Encoder.from_pretrained(trained / "enc"), Encoder.from_pretrained(tmp_path / "adapted")
    assert out.has_softmax and out.vocab.tokens == src.vocab.tokens
    assert (
        json.loads((tmp_path / "adapted.adapt" / "adapt.json").read_text())["valid_ppl_after"] == r["valid_ppl_after"]
    )
    # the same call again resumes its finished run instead of training anew, to the same encoder
    again = adapt(trained / "enc", str(domain), tmp_path / "adapted", cfg, progress=False)
    assert again["valid_ppl_after"] == r["valid_ppl_after"]
    assert json.loads((tmp_path / "adapted.adapt" / "metrics.json").read_text())["resumed_from_step"] == 20


def test_adapting_a_pretraining_output_through_the_cli(trained, domain, tmp_path, capsys):
    assert main(["adapt", str(trained / "model" / "best"), str(domain), str(tmp_path / "a"), "--steps", "5"]) == 0
    assert "held-out perplexity" in capsys.readouterr().out
    assert Encoder.from_pretrained(tmp_path / "a").has_softmax


def test_sources_that_cannot_be_adapted_are_refused(trained, domain, tmp_path):
    enc = Encoder.from_pretrained(trained / "enc")
    enc.has_softmax, enc.config["with_softmax"] = False, False
    enc.save_pretrained(tmp_path / "no-softmax")
    with pytest.raises(PipelineError, match="has no softmax, so it cannot be adapted"):
        adapt(tmp_path / "no-softmax", str(domain), tmp_path / "out")
    with pytest.raises(PipelineError, match="not an encoder or a pretraining output"):
        adapt(trained / "prep", str(domain), tmp_path / "out")
    with pytest.raises(PipelineError, match="corpus is empty"):
        (tmp_path / "empty.txt").write_text("\n")
        adapt(trained / "enc", str(tmp_path / "empty.txt"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
