import numpy as np
import pytest
import torch

from pipeline.tasks.features import (
    CASE_DIM,
    CASES,
    PAD,
    UNK,
    Features,
    LookupVectors,
    TaskCharCNN,
    build_features,
    build_word_list,
    casing,
    init_vectors,
)
from pipeline.word2vec import VectorLookup

from helpers import SENTS, TOY, finetune_cfg, kv_from


def test_lookup_features():
    f = Features(words=LookupVectors(VectorLookup(kv_from(TOY), "zero")))
    x, mask, _ = f([["man", "Queen"], ["girl"]])
    assert x.shape == (2, 2, 4) and mask.tolist() == [[True, True], [True, False]]
    assert torch.equal(x[0, 1], torch.tensor(TOY["queen"], dtype=torch.float32))  # lower-cased fallback
    assert (x[1, 1] == 0).all()


@pytest.mark.parametrize(
    "token, case",
    [
        ("the", "lower"),
        ("The", "title"),
        ("EU", "upper"),
        ("1996", "numeric"),
        ("1-0", "has_digit"),
        ("McDonald", "mixed"),
        (",", "other"),
    ],
)
def test_casing(token, case):
    assert CASES[casing(token)] == case


def test_word_table_from_training_words_and_word2vec():
    w2v = VectorLookup(kv_from({"King": [1, 0, 0, 0], "king": [0, 1, 0, 0], "queen": [0, 0, 1, 0]}))
    words = build_word_list([["The", "king"], ["the", "cat"]], w2v, max_words=100)
    assert words == [PAD, UNK, "the", "cat", "king", "queen"]
    init = init_vectors(words, w2v, 4, seed=0)
    assert (init[0] == 0).all() and init[4].tolist() == [1, 0, 0, 0]  # the most frequent casing's vector
    assert init[5].tolist() == [0, 0, 1, 0] and np.abs(init[3]).sum() > 0  # "cat": seeded noise
    assert build_word_list([["a", "b", "c"]], w2v, max_words=3) == [PAD, UNK, "a"]


def test_trainable_words_casing_and_chars_learn():
    cfg = finetune_cfg(inputs="word2vec", word_dropout=0.0, seed=0)
    w2v = VectorLookup(kv_from(TOY))
    f = build_features(cfg, word2vec=w2v, train_sentences=[["man", "Woman"], ["king"]])
    x, mask, _ = f([["Man", "unseen"], ["king"]])
    assert x.shape == (2, 2, 4 + CASE_DIM + cfg.inputs.char_filters)
    assert torch.equal(x[0, 0, :4], torch.tensor(TOY["man"], dtype=torch.float32))  # lower-cased lookup
    assert (x[1, 1] == 0).all()  # padding
    x.sum().backward()
    assert f.words.embedding.weight.grad is not None and f.chars.conv.weight.grad is not None


def test_word_dropout_replaces_only_rare_training_words():
    cfg = finetune_cfg(inputs="word2vec", word_dropout=1.0)
    f = build_features(cfg, train_sentences=[["a", "a", "rare"]])
    f.train()
    words, _ = f.words.ids([["a", "rare"]], 1, 2)
    unk = f.words.index[UNK]
    assert words.tolist() == [[f.words.index["a"], unk]]
    f.eval()
    assert f.words.ids([["a", "rare"]], 1, 2)[0].tolist() == [[f.words.index["a"], f.words.index["rare"]]]


def test_char_cnn_does_not_depend_on_batch_companions():
    torch.manual_seed(0)
    cnn = TaskCharCNN(dropout=0.0).eval()
    alone = cnn([["Zyzzyva"]], 1, 1)
    together = cnn([["a", "b", "c"], ["Zyzzyva"]], 2, 3)
    assert torch.allclose(alone[0, 0], together[1, 0], atol=1e-6) and (together[1, 1:] == 0).all()


def test_elmo_features_equal_the_mix_of_encoder_layers(trained):  # noqa: F811
    from pipeline.encoder import Encoder

    enc = Encoder.from_pretrained(trained / "enc")
    f = Features(encoder=enc, words=LookupVectors(VectorLookup(kv_from(TOY), "zero")), elmo_dropout=0.0)
    x, mask, _ = f(SENTS)
    assert x.shape == (3, 5, 4 + enc.dim)
    layers = enc.embed(SENTS)
    for b, ref in enumerate(layers):  # uniform mix with gamma 1 = layer average
        n = ref.shape[1]
        assert np.allclose(x[b, :n, 4:].detach().numpy(), ref.mean(0), atol=1e-6)
    x.sum().backward()
    assert f.mix.scalars.grad is not None


def test_elmo_at_the_output_is_a_second_mix_of_the_same_layers(trained):  # noqa: F811
    from pipeline.encoder import Encoder

    enc = Encoder.from_pretrained(trained / "enc")
    f = Features(encoder=enc, elmo_dropout=0.0, elmo_output=True)
    with torch.no_grad():
        f.output_mix.scalars.copy_(torch.tensor([5.0, 0.0, 0.0]))  # ≈ the token layer alone
    x, mask, out = f(SENTS)
    assert f.output_dim == enc.dim and out.shape == (3, 5, enc.dim) and x.shape == (3, 5, enc.dim)
    layers = enc.embed(SENTS)
    for b, ref in enumerate(layers):
        n = ref.shape[1]
        assert np.allclose(x[b, :n].detach().numpy(), ref.mean(0), atol=1e-6)  # the input mix: uniform
        w = torch.softmax(torch.tensor([5.0, 0.0, 0.0]), 0).numpy()
        assert np.allclose(out[b, :n].detach().numpy(), np.tensordot(w, ref, 1), atol=1e-5)
        assert (out[b, n:] == 0).all()
    out.sum().backward()
    assert f.output_mix.scalars.grad is not None and f.mix.scalars.grad is None
    assert Features(encoder=enc).output_dim == 0 and Features(encoder=enc)(SENTS)[2] is None
