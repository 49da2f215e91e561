import math

import torch

from pipeline.tasks.scalar_mix import ScalarMix


def test_mix_equals_hand_computation():
    mix = ScalarMix(2)
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.0, math.log(3.0)]))  # softmax → [0.25, 0.75]
        mix.gamma.fill_(2.0)
    h0 = torch.tensor([[[1.0, 2.0]]])
    h1 = torch.tensor([[[3.0, -1.0]]])
    # 2 * (0.25 * [1, 2] + 0.75 * [3, -1]) = 2 * [2.5, -0.25] = [5, -0.5]
    assert torch.allclose(mix([h0, h1]), torch.tensor([[[5.0, -0.5]]]))
    assert torch.allclose(mix.penalty(), torch.tensor(math.log(3.0) ** 2))


def test_layer_norm_uses_only_unmasked_positions():
    mix = ScalarMix(1, layer_norm=True)
    h = torch.tensor([[[1.0, 3.0], [5.0, 7.0], [100.0, -100.0]]])  # last position is padding
    mask = torch.tensor([[True, True, False]])
    # real values 1, 3, 5, 7: mean 4, variance (9 + 1 + 1 + 9) / 4 = 5
    expect = (torch.tensor([1.0, 3.0, 5.0, 7.0]) - 4) / math.sqrt(5)
    out = mix([h], mask)
    assert torch.allclose(out[0, :2].reshape(-1), expect, atol=1e-6)
    h2 = h.clone()
    h2[0, 2] = torch.tensor([-3.0, 42.0])  # other padding: real outputs unchanged
    assert torch.allclose(mix([h2], mask)[0, :2], out[0, :2])


def test_gradients_reach_the_scalars():
    mix = ScalarMix(3)
    layers = [torch.randn(2, 4, 5) * (k + 1) for k in range(3)]
    mix(layers).sum().backward()
    assert mix.scalars.grad is not None and mix.scalars.grad.abs().sum() > 0 and mix.gamma.grad is not None
