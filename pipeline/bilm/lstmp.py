"""The projected-LSTM step loop with clipping (ELMo's cell: clip the cell at ``cell_clip``, the
projection at ``proj_clip``), as one autograd function with a hand-written backward: both
directions' stacks run in one scan, the per-step matmuls batched over them. PyTorch's own LSTM
kernel cannot clip, so the released ELMo models need this path.

Each step is two matmuls (PyTorch) and the element-wise cell work. On the CPU that work runs
fused in one pass per row in C (:mod:`.native`, ``lstmp_cell.c``) where a compiler is present;
elsewhere (no compiler, a GPU, ``native=False``) the same arithmetic runs as PyTorch ops. Both
give the same numbers up to float rounding (tests/test_model_kernels.py).

Shapes: D directions (stacks) run together, T steps, B rows, H cell, P projection."""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

from pipeline.bilm.native import cell_kernel


def native_cell_for(gx: torch.Tensor, w_hh: torch.Tensor):
    """The compiled cell library when it can run this scan (CPU, fp32 or bf16 matmuls), else None."""
    if gx.device.type != "cpu" or gx.dtype != w_hh.dtype or w_hh.dtype not in (torch.float32, torch.bfloat16):
        return None
    return cell_kernel()


def lstmp_steps(gx, bias, w_hh, w_hr, cell_clip, proj_clip, h=None, c=None, save=False, native=True):
    """The projected-LSTM recurrence: gx (D, T, B, 4H) input products, bias (D, 4H) fp32, w_hh (D, P, 4H),
    w_hr (D, H, P), gx and the weights in the matmul dtype; initial h (D, B, P) and c (D, B, H)
    (zeros when None) → (out (D, T, B, P) in the matmul dtype, last c (D, B, H) fp32, saved):
    ``saved`` = (gate activations (D, T, B, 4H) fp32, cells (D, T, B, H) fp32, projection inputs
    m = o * tanh(c) (D, T, B, H) in the matmul dtype) when ``save``, else None.
    Gate order i, f, g, o (nn.LSTM); c then h clipped when set. ``native``: the compiled cell where it can run."""
    D, T, B, G = gx.shape
    H, P, dt = G // 4, w_hh.shape[1], w_hh.dtype
    h = gx.new_zeros(D, B, P) if h is None else h.to(dt)
    c = gx.new_zeros(D, B, H, dtype=torch.float32) if c is None else c.float().clone()
    out = gx.new_empty(D, T, B, P)
    if save:
        acts, cs = gx.new_empty(D, T, B, G, dtype=torch.float32), gx.new_empty(D, T, B, H, dtype=torch.float32)
        ms = gx.new_empty(D, T, B, H)
    lib = native_cell_for(gx, w_hh) if native else None
    gx, bias, h = gx.contiguous(), bias.float().contiguous(), h.contiguous()
    if lib is not None and B <= FEW_ROWS and not save:
        _steps_in_one_call(lib, gx, bias, w_hh, w_hr, h, c, out, cell_clip, proj_clip)
        return out, c, None
    m = gx.new_empty(D, B, H)  # the projection's input of a step (with save: a view of ms)
    for t in range(T):
        gh = torch.bmm(h, w_hh)  # (D, B, 4H)
        if save:
            m = ms[:, t]
        if lib is not None:
            lib.lstmp_forward_step(
                D, B, H, dt == torch.bfloat16, torch.get_num_threads(), _limit(cell_clip), _at(gx, t), T * B * G,
                bias.data_ptr(), gh.data_ptr(), c.data_ptr(), m.data_ptr(), T * B * H if save else B * H,
                _at(acts, t) if save else None, T * B * G, _at(cs, t) if save else None, T * B * H,
            )  # fmt: skip
        else:
            gates = gx[:, t].float() + bias[:, None] + gh  # (D, B, 4H) fp32
            a, c = _cell_step(gates, c, cell_clip)
            m.copy_(a[..., 3 * H :] * torch.tanh(c))
            if save:
                acts[:, t], cs[:, t] = a, c
        h = torch.bmm(m, w_hr)  # (D, B, P)
        if proj_clip is not None:
            h = h.clamp_(-proj_clip, proj_clip)
        out[:, t] = h
    return out, c, ((acts, cs, ms) if save else None)


# up to this many rows per direction (one-sentence inference) the whole recurrence runs in one call
# to lstmp_cell.c: PyTorch's bf16 matmul of one row spends longer preparing the weights than
# multiplying (released `small`, both directions: 146 µs against 43 µs for (1, 128) @ (128, 4096);
# 172 against 228 µs at 8 rows; fp32 ~61 µs either way), and the calls from Python at every step go
FEW_ROWS = 4


def _steps_in_one_call(lib, gx, bias, w_hh, w_hr, h, c, out, cell_clip, proj_clip) -> None:
    """Every step of :func:`lstmp_steps` in one call to lstmp_cell.c (no saved values): fills out
    (D, T, B, P) and leaves the last cell in c."""
    D, T, B, G = gx.shape
    H, P = G // 4, w_hh.shape[1]
    # kept in variables while C reads them (a temporary's memory could be reused before the call)
    h, w_hh, w_hr = h.clone(), w_hh.contiguous(), w_hr.contiguous()
    gh, m = gx.new_empty(D, B, G), gx.new_empty(D, B, H)
    lib.lstmp_steps_few_rows(
        D, T, B, H, P, gx.dtype == torch.bfloat16, torch.get_num_threads(), _limit(cell_clip), _limit(proj_clip),
        gx.data_ptr(), bias.data_ptr(), w_hh.data_ptr(), w_hr.data_ptr(), h.data_ptr(), c.data_ptr(),
        gh.data_ptr(), m.data_ptr(), out.data_ptr(),
    )  # fmt: skip


def _cell_step(gates, c, cell_clip):
    """PyTorch's version of lstmp_cell.c's forward step: gates (D, B, 4H) and c (D, B, H) fp32
    → (activations (D, B, 4H), the new c)."""
    H = c.shape[-1]
    a = torch.sigmoid(gates)
    a[..., 2 * H : 3 * H] = torch.tanh(gates[..., 2 * H : 3 * H])
    i, f, g, _ = a.chunk(4, dim=-1)
    c = torch.addcmul(f * c, i, g)
    if cell_clip is not None:
        c = c.clamp(-cell_clip, cell_clip)
    return a, c


def _limit(clip: float | None) -> float:
    return math.inf if clip is None else float(clip)


def _at(x: torch.Tensor, t: int) -> int:
    """Address of step t of a contiguous (D, T, ...) tensor."""
    return x[:, t].data_ptr()


class LSTMPScan(torch.autograd.Function):
    """The projected-LSTM recurrence of D independent layers at once, with a hand-written backward.

    Why by hand: PyTorch has no fused CPU kernel for ``proj_size`` LSTMs, and autograd through a
    step loop does six small matmuls per step. Here each step does two (forward) and two
    (backward); the weight gradients are one large matmul per weight after the loop, and every
    matmul runs in the autocast dtype (bf16 on CPU/GPU) while gates and cells stay fp32.

    forward: gx (D, T, B, 4H) input products, bias (D, 4H) fp32 (gate order i, f, g, o as nn.LSTM),
    w_hh (D, P, 4H), w_hr (D, H, P), gx and weights in the compute dtype → h (D, T, B, P).
    """

    @staticmethod
    def forward(ctx, gx, bias, w_hh, w_hr, cell_clip, proj_clip, native):
        save = any(ctx.needs_input_grad[:4])
        out, _, saved = lstmp_steps(gx, bias, w_hh, w_hr, cell_clip, proj_clip, save=save, native=native)
        if saved is not None:
            ctx.save_for_backward(*saved, out, w_hh, w_hr)
            ctx.clips, ctx.native = (cell_clip, proj_clip), native
        return out

    @staticmethod
    def backward(ctx, grad_out):
        a, c, m, out, w_hh, w_hr = ctx.saved_tensors  # (D,T,B,4H) (D,T,B,H) (D,T,B,H) (D,T,B,P)
        cell_clip, proj_clip = ctx.clips
        D, T, B, G = a.shape
        H = G // 4
        lib = native_cell_for(out, w_hh) if ctx.native else None
        step_back = _native_backward if lib is not None else _torch_backward
        d_gates, d_h, d_bias = step_back(lib, grad_out, a, c, out, w_hh, w_hr, cell_clip, proj_clip)
        h_prev = torch.cat([out.new_zeros(D, 1, B, out.shape[-1]), out[:, :-1]], dim=1)  # (D, T, B, P)
        d_w_hh = torch.bmm(h_prev.reshape(D, T * B, -1).transpose(1, 2), d_gates.reshape(D, T * B, G))
        d_w_hr = torch.bmm(m.reshape(D, T * B, H).transpose(1, 2), d_h.reshape(D, T * B, -1))
        return d_gates, d_bias, d_w_hh, d_w_hr, None, None, None


def _native_backward(lib, grad_out, a, c, out, w_hh, w_hr, cell_clip, proj_clip):
    """The backward step loop with the compiled cell → d_gates (D, T, B, 4H), d_h (D, T, B, P) in the
    matmul dtype, d_bias (D, 4H) fp32."""
    D, T, B, G = a.shape
    H, P, dt = G // 4, out.shape[-1], w_hh.dtype
    bf16 = dt == torch.bfloat16
    grad_out = grad_out.to(dt).contiguous()
    w_hh_t, w_hr_t = w_hh.transpose(1, 2), w_hr.transpose(1, 2)
    d_gates, d_h = a.new_empty(D, T, B, G, dtype=dt), a.new_empty(D, T, B, P, dtype=dt)
    dc, d_bias = a.new_zeros(D, B, H), a.new_zeros(D, G)
    dh_next: torch.Tensor | None = None
    threads = torch.get_num_threads()
    for t in range(T - 1, -1, -1):
        lib.lstmp_backward_h(
            D, B, P, bf16, _limit(proj_clip), _at(grad_out, t), None if dh_next is None else dh_next.data_ptr(),
            _at(out, t), _at(d_h, t), T * B * P,
        )  # fmt: skip
        dm = torch.bmm(d_h[:, t], w_hr_t)  # (D, B, H): ∂/∂(o * tanh c)
        lib.lstmp_backward_cell(
            D, B, H, bf16, threads, _limit(cell_clip), dm.data_ptr(), _at(a, t), T * B * G, _at(c, t),
            _at(c, t - 1) if t > 0 else None, T * B * H, dc.data_ptr(), _at(d_gates, t), T * B * G,
            d_bias.data_ptr(),
        )  # fmt: skip
        dh_next = torch.bmm(d_gates[:, t], w_hh_t)  # (D, B, P)
    return d_gates, d_h, d_bias


def _torch_backward(lib, grad_out, a, c, out, w_hh, w_hr, cell_clip, proj_clip):
    """The backward step loop in PyTorch ops (the same arithmetic as _native_backward)."""
    D, T, B, G = a.shape
    H, dt = G // 4, w_hh.dtype
    i, f, g, o = a.chunk(4, dim=-1)
    c_prev = torch.cat([c.new_zeros(D, 1, B, H), c[:, :-1]], dim=1)
    tc = torch.tanh(c)
    # the per-step derivative factors, for all steps at once
    k_c = o * (1 - tc * tc)  # ∂h-path into c: dc += dm * k_c
    k_ifg = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=-1).view(D, T, B, 3, H)
    k_o = tc * o * (1 - o)
    h_ok = (out.abs() < proj_clip).float() if proj_clip is not None else None
    c_ok = (c.abs() < cell_clip).float() if cell_clip is not None else None
    w_hh_t, w_hr_t = w_hh.transpose(1, 2), w_hr.transpose(1, 2)
    d_gates, d_h = a.new_empty(D, T, B, G, dtype=dt), a.new_empty(grad_out.shape, dtype=dt)
    dh_next = grad_out.new_zeros(D, B, grad_out.shape[-1], dtype=torch.float32)
    dc, d_bias = c.new_zeros(D, B, H), c.new_zeros(D, G)
    for t in range(T - 1, -1, -1):
        dh = grad_out[:, t].float() + dh_next  # ∂/∂h_t (clipped)
        if h_ok is not None:
            dh = dh * h_ok[:, t]
        d_h[:, t] = dh
        dm = torch.bmm(d_h[:, t], w_hr_t).float()  # (D, B, H): ∂/∂(o * tanh c)
        dc = torch.addcmul(dc, dm, k_c[:, t])
        if c_ok is not None:
            dc = dc * c_ok[:, t]
        dg = torch.cat([(dc[:, :, None] * k_ifg[:, t]).view(D, B, 3 * H), dm * k_o[:, t]], dim=-1)  # (D, B, 4H)
        d_bias += dg.sum(1)
        d_gates[:, t] = dg
        dc = dc * f[:, t]
        dh_next = torch.bmm(d_gates[:, t], w_hh_t).float()
    return d_gates, d_h, d_bias


def lstmp_scan(
    x: torch.Tensor,
    lstms: list[nn.LSTM],
    cell_clip: float | None = None,
    proj_clip: float | None = None,
    native: bool = True,
) -> torch.Tensor:
    """D projected-LSTM layers, each on its own input: x (D, B, T, P) → (D, B, T, P).

    Input products of every step in one matmul before the recurrence; the recurrence in
    :class:`LSTMPScan`. Under autocast the matmuls run in its dtype (fp32 master weights).
    ``native``: the compiled cell (:mod:`.native`) where it can run.
    """
    D, B, T, P = x.shape
    dev = x.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    with torch.autocast(dev, enabled=False):
        if not torch.is_grad_enabled() or not (
            x.requires_grad or any(p.requires_grad for m in lstms for p in m.parameters())
        ):
            return lstmp_infer(x, lstms, cell_clip, proj_clip, native, dt)
        gx, bias, w_hh, w_hr = scan_inputs(x, lstms, dt)
        out = LSTMPScan.apply(gx, bias, w_hh, w_hr, cell_clip, proj_clip, native)  # (D, T, B, P)
        return out.transpose(1, 2).to(x.dtype)


# rows of input products computed at once by lstmp_infer: (D, rows, 4H) stays in cache and the
# matmul keeps its rate (measured, released `small` in bf16: 231 GFLOP/s for 4,000 rows at once,
# 383 for 1,280, timing that matmul alone)
INFER_ROWS = 1024


def lstmp_infer(x, lstms, cell_clip, proj_clip, native, dt) -> torch.Tensor:
    """:func:`lstmp_scan` without autograd: the input products are computed a few steps at a time,
    just before the steps that read them, instead of for every step up front."""
    D, B, T, P = x.shape
    steps = max(1, INFER_ROWS // B)
    w_ih, bias, w_hh, w_hr = inference_weights(lstms, dt)
    h = c = None
    outs = []
    for t0 in range(0, T, steps):
        gx = input_products(x[:, :, t0 : t0 + steps], w_ih)
        out, c, _ = lstmp_steps(gx, bias, w_hh, w_hr, cell_clip, proj_clip, h, c, native=native)
        h = out[:, -1]
        outs.append(out)
    return torch.cat(outs, dim=1).transpose(1, 2).to(x.dtype)


def scan_inputs(x: torch.Tensor, lstms: list[nn.LSTM], dt: torch.dtype):
    """x (D, B, T, P) → gx (D, T, B, 4H) input products, bias (D, 4H) fp32, w_hh (D, P, 4H), w_hr (D, H, P);
    all but the bias in dt. The bias is added inside the step (lstmp_cell.c), not here: adding it to gx
    would cost a pass over (D, T, B, 4H) and, in bf16, an fp32 copy of it."""
    w_ih, bias, w_hh, w_hr = scan_weights(lstms, dt)
    return input_products(x, w_ih), bias, w_hh, w_hr


def scan_weights(lstms: list[nn.LSTM], dt: torch.dtype):
    """The D layers' weights stacked: w_ih (D, P, 4H), bias (D, 4H) fp32, w_hh (D, P, 4H), w_hr (D, H, P) in dt."""

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([m.get_parameter(name) for m in lstms])

    w_ih = stacked("weight_ih_l0").transpose(1, 2).to(dt).contiguous()  # (D, P, 4H)
    # each direction's two biases added before stacking: stacking each first changed the two-process
    # run's gradients against the one-process run (test_two_processes_match_one_with_the_same_global_batch)
    bias = torch.stack([m.get_parameter("bias_ih_l0") + m.get_parameter("bias_hh_l0") for m in lstms])  # (D, 4H)
    # contiguous: a one-row matmul reads them ~1.5x faster than transposed views (fp32), and lstmp_cell.c needs it
    w_hh = stacked("weight_hh_l0").transpose(1, 2).to(dt).contiguous()  # (D, P, 4H)
    w_hr = stacked("weight_hr_l0").transpose(1, 2).to(dt).contiguous()  # (D, H, P)
    return w_ih, bias, w_hh, w_hr


_inference_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_weights(lstms: list[nn.LSTM], dt: torch.dtype):
    """:func:`scan_weights`, kept between calls for frozen weights (no parameter requires grad, as in
    an :class:`~pipeline.encoder.Encoder` loaded for use; the parameters' identities and in-place
    versions are the key): stacking and casting them cost ~15 % of a one-sentence embedding of the
    released `small` model. Weights that may be trained are stacked anew on every call: PyTorch's
    fused optimizer steps change them in place without bumping their versions."""
    params = [p for m in lstms for p in m.parameters()]
    if any(p.requires_grad for p in params):
        return scan_weights(lstms, dt)
    key = (dt, tuple((id(p), p._version, p.data_ptr()) for p in params))
    held = _inference_weights.get(lstms[0])
    if held is None or held[0] != key:
        held = (key, scan_weights(lstms, dt))
        _inference_weights[lstms[0]] = held
    return held[1]


def input_products(x: torch.Tensor, w_ih: torch.Tensor) -> torch.Tensor:
    """x (D, B, T, P), w_ih (D, P, 4H) → (D, T, B, 4H) in w_ih's dtype, time-major: each step's rows contiguous."""
    D, B, T, P = x.shape
    xt = x.transpose(1, 2).reshape(D, T * B, P).to(w_ih.dtype)
    return torch.bmm(xt, w_ih).view(D, T, B, -1)
