import math

import numpy as np
import pytest
import torch

from pipeline.bilm.bodies import LSTMLayer, reverse_padded
from pipeline.bilm.model import BiLM, batch_inputs
from pipeline.bilm.softmax import SoftmaxHead
from pipeline.bilm.tokens import CharCNN, Highway, trim_chars
from pipeline.config import ModelConfig
from pipeline.data.batching import make_batch
from pipeline.data.chars import char_table

V = 60
TYPES = ["<PAD>", "<UNK>", "<S>", "</S>"] + [f"w{i}" * (1 + i % 5) for i in range(V - 4)] + ["longword" * 4, "é日😀"]
TABLE = char_table(TYPES, 50, pad_rows=[0])


def tiny(**kw):
    base = dict(filters=[[1, 4], [2, 4], [3, 8]], n_highway=1, projection_dim=8, cell_dim=16, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return BiLM(tiny(**kw), V).eval()


def run(m, sents, dedup=True):
    b = make_batch([np.array(s) for s in sents], V)
    chars, idx = batch_inputs(b.type_ids, TABLE, dedup=dedup)
    return m(chars, idx, b.mask), b


@pytest.mark.parametrize("preset", ["tiny", "cpu", "small", "original"])
def test_output_shapes_for_every_preset_structure(preset, tmp_path):
    """Each preset's structure (layers, highways, filter widths) at tiny widths."""
    from pipeline.config import load_params

    (tmp_path / "p.yaml").write_text(f"presets: [{preset}]\n")
    cfg = load_params(tmp_path / "p.yaml").model
    small = ModelConfig(
        filters=[[w, 2] for w, _ in cfg.filters],
        n_highway=cfg.n_highway,
        projection_dim=6,
        cell_dim=10,
        n_layers=cfg.n_layers,
        softmax=cfg.softmax,
        n_samples=8,
        dropout=0.0,
    )
    m = BiLM(small, V)
    out, b = run(m, [[5, 6, 7, 61], [8]])
    B, T = b.type_ids.shape
    assert len(out.layers) == cfg.n_layers + 1
    assert all(layer.shape == (B, T, 12) for layer in out.layers)
    assert torch.equal(out.layers[0][..., :6], out.layers[0][..., 6:])  # token layer duplicated
    f, bw = m.lm_nll(out, b.fwd_targets, b.bwd_targets)
    assert f.shape == () and torch.isfinite(f) and torch.isfinite(bw)


@pytest.mark.parametrize("body", ["lstm", "gru", "tcn"])
def test_padding_and_batch_companions_do_not_change_outputs(body):
    m = model(body=body)
    alone, _ = run(m, [[5, 6, 7]])
    crowd, _ = run(m, [[9, 10, 11, 12, 13, 14, 15, 16], [5, 6, 7], [58, 59]])  # longer words, more padding
    for a, c in zip(alone.layers, crowd.layers):
        assert torch.allclose(a[0], c[1, :5], atol=1e-6)


@pytest.mark.parametrize("body", ["lstm", "gru", "tcn"])
def test_causality(body):
    """Forward LM at t ignores tokens after t; backward LM at t ignores tokens before t; every layer."""
    m = model(1, body=body)
    s1 = [5, 6, 7, 8, 9, 10]
    out1, _ = run(m, [s1])
    t = 3  # position in the batch (with <S> at 0): token s1[2]
    s2 = s1[:t] + [20, 21, 22]  # change everything after position t
    out2, _ = run(m, [s2])
    s3 = [30, 31] + s1[2:]  # change tokens before position 3 (positions 1, 2)
    out3, _ = run(m, [s3])
    for a, b, c in zip(out1.layers[1:], out2.layers[1:], out3.layers[1:]):
        fwd, bwd = slice(0, 8), slice(8, 16)
        assert torch.allclose(a[0, : t + 1, fwd], b[0, : t + 1, fwd], atol=1e-6)
        assert not torch.allclose(a[0, t + 1 :, fwd], b[0, t + 1 :, fwd])
        assert torch.allclose(a[0, t:, bwd], c[0, t:, bwd], atol=1e-6)
        assert not torch.allclose(a[0, :t, bwd], c[0, :t, bwd])


@pytest.mark.parametrize("body", ["lstm", "gru", "tcn"])
def test_every_body_learns_a_tiny_corpus(body):
    torch.manual_seed(0)
    m = model(0, body=body, n_layers=3 if body == "tcn" else 2).train()
    sents = [[5 + (i * j) % 40 for j in range(3 + i % 6)] for i in range(12)]
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        out, b = run(m, sents)
        f, bw = m.lm_nll(out, b.fwd_targets, b.bwd_targets)
        loss = (f + bw) / (2 * b.n_targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert len(out.layers) == m.n_layers and m.n_layers == (3 if body != "tcn" else 3)


def test_tcn_keeps_evenly_spaced_block_outputs():
    m = model(0, body="tcn", n_layers=6, tcn_outputs=2)
    assert m.forward_stack.kept == [2, 5] and m.n_layers == 3
    assert [b.conv1.dilation[0] for b in m.forward_stack.blocks] == [1, 2, 4, 8, 16, 32]


def test_dedup_and_trimmed_encoder_equals_naive():
    m = model(2)
    sents = [[5, 6, 5, 7, 58], [59, 5, 5], [6]]
    fast, _ = run(m, sents, dedup=True)
    naive, b = run(m, sents, dedup=False)
    chars, _ = batch_inputs(b.type_ids, TABLE, dedup=True)
    assert trim_chars(chars, 3).shape[1] < 50  # fewer columns were computed
    for a, c in zip(fast.layers, naive.layers):
        assert torch.allclose(a, c, atol=1e-5)


def test_trim_chars_keeps_exact_maxpool():
    torch.manual_seed(0)
    cnn = CharCNN(tiny(filters=[[1, 3], [4, 5], [7, 6]]))
    chars = torch.as_tensor(TABLE[[4, 10, 58]]).long()
    assert torch.allclose(cnn(chars), cnn(trim_chars(chars, 7)), atol=1e-6)


def test_highway_starts_by_carrying_its_input():
    hw = Highway(6, 1)
    x = torch.randn(4, 6)
    layer = hw.layers[0]
    assert (layer.bias[6:] == 1).all() and (layer.bias[:6] == 0).all()
    g = torch.sigmoid(layer(x)[:, 6:])
    h = torch.relu(layer(x)[:, :6])
    assert torch.allclose(hw(x), g * x + (1 - g) * h)


def test_reverse_padded():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_padded(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_clipped_lstm_equals_fused_when_clips_are_loose_and_clips_when_tight():
    torch.manual_seed(0)
    layer = LSTMLayer(4, 8, None, None)
    x = torch.randn(3, 5, 4) * 3
    fused = layer(x)
    layer.cell_clip, layer.proj_clip = 1e9, 1e9
    assert torch.allclose(layer(x), fused, atol=1e-5)
    layer.cell_clip, layer.proj_clip = 0.1, 0.05
    assert layer(x).abs().max() <= 0.05 + 1e-7


def test_sampled_softmax_approaches_full_loss_as_samples_grow():
    torch.manual_seed(0)
    vocab = 200
    h = torch.randn(64, 8)
    y = torch.randint(4, vocab, (64,))
    gaps = []
    for n in (10, 50, 150, 199):
        head = SoftmaxHead(ModelConfig(projection_dim=8, cell_dim=16, softmax="sampled", n_samples=n), vocab)
        torch.manual_seed(1)
        head.weight.data.normal_()
        head.eval()
        full = head.nll(h, y).item()
        head.train()
        head.generator = torch.Generator().manual_seed(0)
        est = np.mean([head.nll(h, y).item() for _ in range(5)])
        gaps.append(abs(est - full) / full)
    assert gaps[-1] < 0.02 and gaps[0] > gaps[-1]
    assert all(a >= b - 1e-3 for a, b in zip(gaps, gaps[1:]))


def test_adaptive_softmax_is_a_distribution():
    head = SoftmaxHead(ModelConfig(projection_dim=8, cell_dim=16, softmax="adaptive"), 100)
    lp = head.log_probs(torch.randn(3, 8))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3), atol=1e-5)
    y = torch.tensor([1, 50, 99])
    assert torch.allclose(
        head.nll(torch.zeros(3, 8), y), -head.log_probs(torch.zeros(3, 8)).gather(1, y[:, None]).sum(), atol=1e-4
    )


def test_full_softmax_padding_never_contributes():
    m = model(3)
    out, b = run(m, [[5, 6], [7, 8, 9, 10]])
    f, bw = m.lm_nll(out, b.fwd_targets, b.bwd_targets)
    lp = m.softmax.log_probs(out.forward_top)
    keep = b.fwd_targets != -100
    manual = -lp[keep].gather(1, b.fwd_targets[keep][:, None]).sum()
    assert torch.allclose(f, manual, atol=1e-4)
    assert math.isfinite(bw.item())
