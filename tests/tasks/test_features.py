import numpy as np
import torch

from pipeline.tasks.features import Features
from pipeline.word2vec import VectorLookup
from helpers import SENTS, TOY, kv_from


def test_word2vec_only_features():
    f = Features(word2vec=VectorLookup(kv_from(TOY), "zero"))
    x, mask = f([["man", "Queen"], ["girl"]])
    assert x.shape == (2, 2, 4) and mask.tolist() == [[True, True], [True, False]]
    assert torch.equal(x[0, 1], torch.tensor(TOY["queen"], dtype=torch.float32))  # lower-cased fallback
    assert (x[1, 1] == 0).all()



def test_elmo_features_equal_the_mix_of_encoder_layers(trained):  # noqa: F811
    from pipeline.encoder import Encoder

    enc = Encoder.from_pretrained(trained / "enc")
    f = Features(encoder=enc, word2vec=VectorLookup(kv_from(TOY), "zero"), elmo_dropout=0.0)
    x, mask = f(SENTS)
    assert x.shape == (3, 5, 4 + enc.dim)
    layers = enc.embed(SENTS)
    for b, ref in enumerate(layers):  # uniform mix with gamma 1 = layer average
        n = ref.shape[1]
        assert np.allclose(x[b, :n, 4:].detach().numpy(), ref.mean(0), atol=1e-6)
    x.sum().backward()
    assert f.mix.scalars.grad is not None
