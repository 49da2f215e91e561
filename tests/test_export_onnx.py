"""`elmo export --format onnx`: the biLM as one ONNX graph, checked against PyTorch, run by ONNX
Runtime through the same Encoder API (embed, LM scores), the CLI and the service; int8 refused
when its vectors drift past the bound. The test biLM is the small one trained by conftest."""

import json

import h5py
import numpy as np
import pytest

from pipeline.encoder import Encoder, OnnxEncoder
from pipeline.errors import PipelineError

from helpers import cli

pytest.importorskip("onnxruntime")
SENTENCES = ["The fire spread quickly .", "Hello !", "Zyxw unheard-of words , café", "a " * 30]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from pipeline.export_onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "enc-onnx"
    said: list[str] = []
    report = export_onnx(trained / "enc", out, log=said.append)
    return out, report, said


def test_the_graph_matches_pytorch_and_runs_through_the_encoder_api(trained, exported):
    out, report, said = exported
    assert max(report["parity_fp32"]["max_abs_diff"]) <= 1e-4 and min(report["parity_fp32"]["lowest_cosine"]) > 0.9999
    assert json.loads((out / "onnx.json").read_text()) == report and any("parity with PyTorch" in s for s in said)
    assert "## ONNX" in (out / "README.md").read_text()
    torch_enc = Encoder.from_pretrained(trained / "enc")
    onnx_enc = Encoder.from_pretrained(out)
    assert isinstance(onnx_enc, OnnxEncoder) and not isinstance(
        Encoder.from_pretrained(out, runtime="torch"), OnnxEncoder
    )
    for a, b in zip(torch_enc.embed(SENTENCES), onnx_enc.embed(SENTENCES)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    ref, got = torch_enc.lm_sums(SENTENCES), onnx_enc.lm_sums(SENTENCES)  # the softmax stays in PyTorch
    assert got["tokens"] == ref["tokens"] and abs(got["forward_nll"] - ref["forward_nll"]) < 1e-3 * ref["forward_nll"]


def test_elmo_embed_runs_the_export_and_a_pretrained_bilm_exports_too(trained, exported, tmp_path):
    out, _, _ = exported
    (tmp_path / "in.txt").write_text("\n".join(SENTENCES) + "\n")
    for enc, h5 in ((trained / "enc", "torch.h5"), (out, "onnx.h5")):
        p = cli("-q", "embed", "in.txt", "--encoder", enc, "--out", h5, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "torch.h5") as a, h5py.File(tmp_path / "onnx.h5") as b:
        assert all(np.abs(a[k][()] - b[k][()]).max() < 1e-4 for k in a if k.isdigit())
    p = cli("export", trained / "model" / "best", "from-bilm", "--format", "onnx", "--prepared", trained / "prep",
            cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0 and "model.onnx (fp32" in p.stdout, p.stderr
    assert isinstance(Encoder.from_pretrained(tmp_path / "from-bilm"), OnnxEncoder)


def test_int8_is_written_when_close_to_fp32_and_refused_past_the_bound(trained, tmp_path):
    from pipeline.export_onnx import export_onnx

    report = export_onnx(trained / "enc", tmp_path / "q", int8=True, int8_min_cosine=0.5, log=lambda m: None)
    assert report["int8"] and min(report["int8_vs_fp32"]["lowest_cosine"]) >= 0.5 and "onnx_int8" in report["seconds"]
    assert len(Encoder.from_pretrained(tmp_path / "q").embed(SENTENCES)) == 4
    before = sorted(p.name for p in (tmp_path / "q").iterdir())
    with pytest.raises(
        PipelineError, match=r"int8 vectors drift from fp32: lowest cosine .* under --int8-min-cosine 1"
    ):
        export_onnx(trained / "enc", tmp_path / "q", int8=True, int8_min_cosine=1.0, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == before  # the earlier export is kept
    (tmp_path / "empty").mkdir()
    p = cli("export", tmp_path / "empty", "x", "--format", "onnx", cwd=tmp_path)
    assert p.returncode == 1 and "not an encoder directory or a pretrained biLM" in p.stderr


def test_elmo_serve_answers_embed_from_an_onnx_export(trained, exported, tmp_path):
    from helpers import ServeProcess

    out, _, _ = exported
    server = ServeProcess(out, cwd=tmp_path)
    try:
        status, answer = server.request("POST", "/embed", {"texts": SENTENCES[:2], "layers": "top"})
        assert status == 200 and [len(v) for v in answer["embeddings"]] == [5, 2]  # a vector per token
        reference = Encoder.from_pretrained(trained / "enc").embed(SENTENCES[:2])
        assert np.abs(np.array(answer["embeddings"][1]) - reference[1][-1]).max() < 1e-4
    finally:
        server.stop()
