"""The projected-LSTM step loop with clipping (ELMo's cell: clip the cell at ``cell_clip``, the
projection at ``proj_clip``), as one autograd function with a hand-written backward: both
directions' stacks run in one scan, the per-step matmuls batched over them. PyTorch's own LSTM
kernel cannot clip, so the released ELMo models need this path.

Shapes: D directions (stacks) run together, T steps, B rows, H cell, P projection."""

from __future__ import annotations

import torch
from torch import nn


def lstmp_steps(gx, w_hh, w_hr, cell_clip, proj_clip, h=None, c=None):
    """The projected-LSTM recurrence: gx (D, T, B, 4H) fp32, w_hh (D, P, 4H), w_hr (D, H, P), initial
    h (D, B, P) and c (D, B, H) (zeros when None) → T + 1 h's (the initial one first), T c's, T
    gate activations (D, B, 4H). Gate order i, f, g, o (nn.LSTM); c then h clipped when set."""
    D, T, B, G = gx.shape
    H, dt = G // 4, w_hh.dtype
    h = gx.new_zeros(D, B, w_hh.shape[1], dtype=dt) if h is None else h.to(dt)
    c = gx.new_zeros(D, B, H) if c is None else c.float()
    hs, cs, acts = [h], [], []
    for t in range(T):
        gates = gx[:, t] + torch.bmm(h, w_hh)  # (D, B, 4H) fp32
        a = torch.sigmoid(gates)
        a[..., 2 * H : 3 * H] = torch.tanh(gates[..., 2 * H : 3 * H])
        i, f, g, o = a.chunk(4, dim=-1)
        c = torch.addcmul(f * c, i, g)
        if cell_clip is not None:
            c = c.clamp(-cell_clip, cell_clip)
        h = torch.bmm((o * torch.tanh(c)).to(dt), w_hr)  # (D, B, P)
        if proj_clip is not None:
            h = h.clamp(-proj_clip, proj_clip)
        hs.append(h)
        cs.append(c)
        acts.append(a)
    return hs, cs, acts


class LSTMPScan(torch.autograd.Function):
    """The projected-LSTM recurrence of D independent layers at once, with a hand-written backward.

    Why by hand: PyTorch has no fused CPU kernel for ``proj_size`` LSTMs, and autograd through a
    step loop does six small matmuls per step. Here each step does two (forward) and two
    (backward); the weight gradients are one large matmul per weight after the loop, and every
    matmul runs in the autocast dtype (bf16 on CPU/GPU) while gates and cells stay fp32.

    forward: gx (D, T, B, 4H) fp32 input products plus biases (gate order i, f, g, o as nn.LSTM),
    w_hh (D, P, 4H), w_hr (D, H, P) in the compute dtype → h (D, T, B, P).
    """

    @staticmethod
    def forward(ctx, gx, w_hh, w_hr, cell_clip, proj_clip):
        hs, cs, acts = lstmp_steps(gx, w_hh, w_hr, cell_clip, proj_clip)
        out = torch.stack(hs[1:], dim=1)  # (D, T, B, P)
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(torch.stack(hs[:-1], 1), torch.stack(cs, 1), torch.stack(acts, 1), out, w_hh, w_hr)
            ctx.clips = (cell_clip, proj_clip)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h_prev, c, a, out, w_hh, w_hr = ctx.saved_tensors  # (D,T,B,P) (D,T,B,H) (D,T,B,4H) (D,T,B,P)
        cell_clip, proj_clip = ctx.clips
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
        d_gates, d_h = torch.empty_like(a), torch.empty_like(grad_out)
        dh_next = grad_out.new_zeros(D, B, grad_out.shape[-1])
        dc = c.new_zeros(D, B, H)
        for t in range(T - 1, -1, -1):
            dh = grad_out[:, t] + dh_next  # ∂/∂h_t (clipped)
            if h_ok is not None:
                dh = dh * h_ok[:, t]
            d_h[:, t] = dh
            dm = torch.bmm(dh.to(dt), w_hr_t).float()  # (D, B, H): ∂/∂(o * tanh c)
            dc = torch.addcmul(dc, dm, k_c[:, t])
            if c_ok is not None:
                dc = dc * c_ok[:, t]
            dg = d_gates[:, t]
            dg.view(D, B, 4, H)[:, :, :3] = dc[:, :, None] * k_ifg[:, t]
            dg[..., 3 * H :] = dm * k_o[:, t]
            dc = dc * f[:, t]
            dh_next = torch.bmm(dg.to(dt), w_hh_t)
        m = o * tc  # (D, T, B, H)
        d_w_hh = torch.bmm(h_prev.reshape(D, T * B, -1).transpose(1, 2), d_gates.reshape(D, T * B, G).to(dt))
        d_w_hr = torch.bmm(m.reshape(D, T * B, H).to(dt).transpose(1, 2), d_h.reshape(D, T * B, -1).to(dt))
        return d_gates, d_w_hh, d_w_hr, None, None


def lstmp_scan(
    x: torch.Tensor, lstms: list[nn.LSTM], cell_clip: float | None = None, proj_clip: float | None = None
) -> torch.Tensor:
    """D projected-LSTM layers, each on its own input: x (D, B, T, P) → (D, B, T, P).

    Input products of every step in one matmul before the recurrence; the recurrence in
    :class:`LSTMPScan`. Under autocast the matmuls run in its dtype (fp32 master weights).
    """
    D, B, T, P = x.shape
    dev = x.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    with torch.autocast(dev, enabled=False):
        gx, w_hh, w_hr = scan_inputs(x, lstms, dt)
        out = LSTMPScan.apply(gx, w_hh, w_hr, cell_clip, proj_clip)  # (D, T, B, P)
        return out.transpose(1, 2).to(x.dtype)


def scan_inputs(x: torch.Tensor, lstms: list[nn.LSTM], dt: torch.dtype):
    """x (D, B, T, P) → gx (D, T, B, 4H) fp32 input products plus biases, w_hh (D, P, 4H), w_hr (D, H, P) in dt."""
    D, B, T, P = x.shape

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([m.get_parameter(name) for m in lstms])

    w_ih = stacked("weight_ih_l0").transpose(1, 2).to(dt)  # (D, P, 4H)
    # each direction's two biases added before stacking: stacking each first changed the two-process
    # run's gradients against the one-process run (test_two_processes_match_one_with_the_same_global_batch)
    bias = torch.stack([m.get_parameter("bias_ih_l0") + m.get_parameter("bias_hh_l0") for m in lstms])
    bias = bias[:, None, :]  # (D, 1, 4H)
    w_hh = stacked("weight_hh_l0").transpose(1, 2).to(dt)  # (D, P, 4H)
    w_hr = stacked("weight_hr_l0").transpose(1, 2).to(dt)  # (D, H, P)
    xt = x.transpose(1, 2).reshape(D, T * B, P).to(dt)  # time-major: each step's rows are contiguous
    gx = (torch.bmm(xt, w_ih).float() + bias).view(D, T, B, -1)  # (D, T, B, 4H)
    return gx, w_hh, w_hr
