"""The hand-written kernels of pipeline/bilm/ (the LSTMP scan, its compiled cell, LinearNLL) against
plain autograd on the same weights."""

import shutil

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

from pipeline.bilm.bodies import LSTMLayer, lstm_layer_from_state
from pipeline.bilm.lstmp import lstmp_scan
from pipeline.bilm.model import BiLM, Kernels, batch_inputs
from pipeline.bilm.native import cell_kernel
from pipeline.bilm.softmax import SoftmaxHead, linear_nll
from pipeline.config import ModelConfig
from pipeline.data.batching import make_batch
from pipeline.data.chars import char_table

V = 40
TABLE = char_table(["<PAD>", "<UNK>", "<S>", "</S>"] + [f"w{i}" * (1 + i % 4) for i in range(V - 4)], 50, pad_rows=[0])


def tiny_bilm(seed: int, **kw) -> BiLM:
    torch.manual_seed(seed)
    cfg = dict(filters=[[1, 4], [2, 4], [3, 8]], n_highway=1, projection_dim=8, cell_dim=16, dropout=0.0)
    return BiLM(ModelConfig(**{**cfg, **kw}), V).eval()


def batch(lengths: list[int]):
    b = make_batch([torch.randint(4, V, (n,)).numpy() for n in lengths], V)
    chars, idx = batch_inputs(b.type_ids, TABLE)
    return b, chars, idx


def reference_lstmp(x, m: nn.LSTM, cell_clip=None, proj_clip=None, h=None, c=None):
    """The projected LSTM written step by step with autograd (PyTorch's gate order i, f, g, o),
    from zero state or the given h (B, P), c (B, H)."""
    B, T, _ = x.shape
    h = x.new_zeros(B, m.proj_size) if h is None else h
    c = x.new_zeros(B, m.hidden_size) if c is None else c
    out = []
    for t in range(T):
        gates = x[:, t] @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if cell_clip is not None:
            c = c.clamp(-cell_clip, cell_clip)
        h = (torch.sigmoid(o) * torch.tanh(c)) @ m.weight_hr_l0.T
        if proj_clip is not None:
            h = h.clamp(-proj_clip, proj_clip)
        out.append(h)
    return torch.stack(out, dim=1)


def grads(fn, x, params, w):
    for p in [x, *params]:
        p.grad = None
    y = fn()
    (y * w).sum().backward()
    return y.detach(), [x.grad.clone()] + [p.grad.clone() for p in params]


@pytest.mark.parametrize("clips", [(None, None), (0.3, 0.1)])
def test_scan_matches_autograd_values_and_gradients(clips):
    torch.manual_seed(0)
    lstms = [nn.LSTM(6, 10, batch_first=True, proj_size=6) for _ in range(2)]
    x = (torch.randn(2, 3, 7, 6) * 2).requires_grad_()
    params = [p for m in lstms for p in m.parameters()]
    w = torch.randn(2, 3, 7, 6)
    ref = lambda: torch.stack([reference_lstmp(x[d], m, *clips) for d, m in enumerate(lstms)])  # noqa: E731
    y_ref, g_ref = grads(ref, x, params, w)
    y, g = grads(lambda: lstmp_scan(x, lstms, *clips), x, params, w)
    assert torch.allclose(y, y_ref, atol=1e-6)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, atol=1e-5)
    if clips[1] is not None:
        assert y.abs().max() <= clips[1] and (y.abs() == clips[1]).any()  # clipping really happened


def test_scan_matches_pytorch_kernel_in_the_bilm():
    m = tiny_bilm(seed=3)
    b, chars, idx = batch([4, 1, 9])
    scanned = m(chars, idx, b.mask)
    plain = BiLM(m.cfg, m.vocab_size, Kernels(scan=False)).eval()
    plain.load_state_dict(m.state_dict())
    native = plain(chars, idx, b.mask)  # skips the padding (packed): real positions compared
    for a, c in zip(scanned.layers, native.layers):
        assert torch.allclose(a[b.mask], c[b.mask], atol=1e-6)


def test_linear_nll_matches_cross_entropy_in_value_and_gradient():
    torch.manual_seed(0)
    h = torch.randn(300, 8, requires_grad=True)  # 300 rows: several chunks for V = 40,000
    weight = torch.randn(40_000, 8, requires_grad=True)
    bias = torch.randn(40_000, requires_grad=True)
    y = torch.randint(0, 40_000, (300,))
    ref = Fn.cross_entropy(Fn.linear(h, weight, bias), y, reduction="sum")
    g_ref = torch.autograd.grad(ref * 0.5, (h, weight, bias))
    out = linear_nll(h, weight, bias, y)
    g = torch.autograd.grad(out * 0.5, (h, weight, bias))
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, atol=1e-5)


def test_sampled_softmax_through_linear_nll_matches_the_plain_one():
    """The fused sampled softmax (LinearNLL with the true logit as an extra column and accidental
    hits left out) against the plain one on the same draws: loss and gradients."""
    torch.manual_seed(0)
    head = SoftmaxHead(ModelConfig(projection_dim=16, softmax="sampled", n_samples=50), 200).train()
    h = torch.randn(3, 40, 16, requires_grad=True)
    y = torch.randint(0, 200, (3, 40))
    y[0, :5] = -100  # padding
    y[1, :10] = 0  # the most frequent class: drawn, so accidental hits happen
    results = []
    for fused in (True, False):
        head.fused, head.generator = fused, torch.Generator().manual_seed(1)
        head.zero_grad()
        h.grad = None
        loss = head.nll(h, y)
        loss.backward()
        results.append([loss.detach(), h.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()])
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_bf16_autocast_agrees_with_fp32_on_a_tiny_model(softmax):
    """bf16 matmuls with fp32 weights, gates and loss: loss within 1 %, gradients close in direction."""
    m = tiny_bilm(seed=1, softmax=softmax).train()
    b, chars, idx = batch([5, 9, 7, 12])

    def loss_and_grad(bf16):
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m(chars, idx, b.mask)
            f, bw = m.lm_nll(out, b.fwd_targets, b.bwd_targets)
        loss = (f + bw) / (2 * b.n_targets)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])

    l32, g32 = loss_and_grad(False)
    l16, g16 = loss_and_grad(True)
    assert all(p.dtype == torch.float32 for p in m.parameters())  # master weights stay fp32
    assert l16 == pytest.approx(l32, rel=0.01)
    assert Fn.cosine_similarity(g16, g32, dim=0) > 0.99


@pytest.mark.parametrize("clips", [(None, None), (0.5, 0.3)])
def test_the_stateful_replay_path_continues_from_the_given_state(clips):
    """lstm_layer_from_state (used to replay AllenNLP's stateful biLM) against the reference loop from
    a random state, and its final state is the state the reference reaches at the last step."""
    torch.manual_seed(1)
    layer = LSTMLayer(6, 12, *clips)
    x, h0, c0 = torch.randn(3, 7, 6), torch.randn(3, 6) * 0.3, torch.randn(3, 12) * 0.3
    out, h, c = lstm_layer_from_state(x, layer, h0, c0)
    with torch.no_grad():
        ref = reference_lstmp(x, layer.lstm, *clips, h=h0, c=c0)
        again = reference_lstmp(x[:, 4:], layer.lstm, *clips, *lstm_layer_from_state(x[:, :4], layer, h0, c0)[1:])
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(h, ref[:, -1], atol=1e-6)
    assert torch.allclose(again, ref[:, 4:], atol=1e-6)  # the carried (h, c) continue the sequence exactly
    zero = lstm_layer_from_state(x, layer, torch.zeros(3, 6), torch.zeros(3, 12))[0]
    assert torch.allclose(zero, layer(x), atol=1e-6)  # zero state: the encoder's own path


def _scan_values_and_grads(lstms, x, w, clips, native: bool, bf16: bool):
    x = x.detach().clone().requires_grad_()
    for m in lstms:
        m.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = lstmp_scan(x, lstms, *clips, native=native)
    (y.float() * w).sum().backward()
    return [y.detach().float(), x.grad] + [p.grad.clone() for m in lstms for p in m.parameters()]


@pytest.mark.skipif(cell_kernel() is None, reason="no C compiler: the PyTorch cell is the only one")
@pytest.mark.parametrize("clips", [(None, None), (0.3, 0.1), (3.0, 3.0)])
def test_the_compiled_cell_gives_the_pytorch_cells_numbers(clips):
    """lstmp_cell.c against the PyTorch version of the same steps: fp32 to float rounding; bf16
    outputs equal and gradients within bf16 rounding (the C backward sums dh in fp32)."""
    torch.manual_seed(0)
    lstms = [nn.LSTM(32, 64, batch_first=True, proj_size=32) for _ in range(2)]
    x, w = torch.randn(2, 5, 11, 32) * 2, torch.randn(2, 5, 11, 32)
    for bf16, tol in ((False, 2e-6), (True, 2e-2)):
        native = _scan_values_and_grads(lstms, x, w, clips, native=True, bf16=bf16)
        plain = _scan_values_and_grads(lstms, x, w, clips, native=False, bf16=bf16)
        for a, b in zip(native, plain):
            assert (a - b).abs().max() <= tol * b.abs().max()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # the inference path
            y_native, y_plain = (lstmp_scan(x, lstms, *clips, native=n) for n in (True, False))
        assert (y_native - y_plain).abs().max() <= tol * y_plain.abs().max()
        assert torch.allclose(y_plain.float(), plain[0], atol=1e-6)  # no-grad path = autograd path
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # one row: lstmp_matmul_rows
            y_native, y_plain = (lstmp_scan(x[:, :1], lstms, *clips, native=n) for n in (True, False))
        assert (y_native - y_plain).abs().max() <= tol * y_plain.abs().max()


def test_the_cell_is_compiled_into_the_cache_directory_and_refused_cleanly(tmp_path, monkeypatch):
    """ELMO_KERNEL_CACHE holds the build (one that cannot be written: a build for the process, with a
    warning); a compiler that fails gives a warning and the PyTorch cell; ELMO_NATIVE=0 turns the
    compiled cell off."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("ELMO_KERNEL_CACHE", str(tmp_path / "kernels"))
    cell_kernel.cache_clear()
    try:
        assert cell_kernel() is not None
        assert [p.suffix for p in (tmp_path / "kernels").iterdir()] == [".so"]
        cell_kernel.cache_clear()
        (tmp_path / "a-file").write_text("")  # a cache path that cannot be made: built for this process
        monkeypatch.setenv("ELMO_KERNEL_CACHE", str(tmp_path / "a-file" / "kernels"))
        with pytest.warns(UserWarning, match="a-file/kernels is not writable: the LSTM cell is compiled for this"):
            assert cell_kernel() is not None
        cell_kernel.cache_clear()
        monkeypatch.setenv("ELMO_KERNEL_CACHE", str(tmp_path / "kernels"))
        monkeypatch.setenv("CC", "false")  # a "compiler" that always fails (a new cache key: it builds)
        with pytest.warns(UserWarning, match="could not compile lstmp_cell.c"):
            assert cell_kernel() is None
        cell_kernel.cache_clear()
        monkeypatch.setenv("ELMO_NATIVE", "0")
        assert cell_kernel() is None
    finally:
        cell_kernel.cache_clear()


def test_encoding_tokens_by_length_gives_the_same_vectors_and_gradients():
    """TokenEncoder.by_length (groups of tokens sorted by length, each over its own columns) against
    the plain forward over every column."""
    m = tiny_bilm(seed=2)
    chars = torch.from_numpy(TABLE[4:]).long()  # 36 tokens of 2 to 12 characters
    te = m.token_encoder
    plain = te(chars)
    grouped = te.by_length(chars, rows=5)
    assert torch.allclose(grouped, plain, atol=1e-6)
    w = torch.randn_like(plain)
    g_plain = torch.autograd.grad((plain * w).sum(), list(te.parameters()))
    g_grouped = torch.autograd.grad((te.by_length(chars, rows=5) * w).sum(), list(te.parameters()))
    for a, b in zip(g_grouped, g_plain):
        assert torch.allclose(a, b, atol=1e-5)


def test_inference_after_a_fused_optimizer_step_uses_the_new_weights():
    """A fused optimizer step changes weights in place without bumping their versions: inference
    right after it must still see the new weights (weights that require grad are never kept)."""
    m = tiny_bilm(seed=4, cell_clip=3.0, proj_clip=3.0)
    b, chars, idx = batch([6, 3, 8])
    opt = torch.optim.Adam(m.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        m(chars, idx, b.mask)
    m.train()
    f, bw = m.lm_nll(m(chars, idx, b.mask), b.fwd_targets, b.bwd_targets)
    (f + bw).backward()
    opt.step()
    m.eval()
    fresh = BiLM(m.cfg, m.vocab_size).eval()
    fresh.load_state_dict(m.state_dict())
    with torch.no_grad():
        after, expected = m(chars, idx, b.mask), fresh(chars, idx, b.mask)
    for a, e in zip(after.layers, expected.layers):
        assert torch.equal(a, e)
