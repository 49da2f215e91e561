import torch

from pipeline.tasks.heads import Classifier, Tagger
from pipeline.tasks.metrics import ner_scores

TAGS = ["O", "B-PER", "I-PER", "B-LOC"]


def toy_ner(n, seed):
    """Sentences of random 'word' vectors where capitalised-name dims mark entities (a learnable toy)."""
    g = torch.Generator().manual_seed(seed)
    X, Y = [], []
    for _ in range(n):
        T = int(torch.randint(3, 9, (1,), generator=g))
        y = torch.zeros(T, dtype=torch.long)
        i = 0
        while i < T:
            r = float(torch.rand(1, generator=g))
            if r < 0.2 and i + 1 < T:
                y[i], y[i + 1] = 1, 2
                i += 2
            elif r < 0.35:
                y[i] = 3
                i += 1
            else:
                i += 1
        x = torch.randn(T, 8, generator=g) * 0.5
        x[:, 0] += (y == 1).float() * 2 + (y == 2).float()  # person names
        x[:, 1] += (y == 3).float() * 2  # places
        X.append(x), Y.append(y)
    B, Tm = len(X), max(len(x) for x in X)
    xs = torch.zeros(B, Tm, 8)
    ys = torch.zeros(B, Tm, dtype=torch.long)
    mask = torch.zeros(B, Tm, dtype=torch.bool)
    for b, (x, y) in enumerate(zip(X, Y)):
        xs[b, : len(x)], ys[b, : len(y)], mask[b, : len(x)] = x, y, True
    return xs, ys, mask


def test_tagger_learns_a_toy_ner_set():
    torch.manual_seed(0)
    x, y, m = toy_ner(200, 0)
    tx, ty, tm = toy_ner(100, 1)
    tagger = Tagger(8, len(TAGS), hidden=16, dropout=0.0)
    opt = torch.optim.Adam(tagger.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        tagger.loss(x, m, y).backward()
        opt.step()
    tagger.eval()
    pred = tagger.decode(tx, tm)
    gold = [[TAGS[t] for t in ty[b, : int(tm[b].sum())]] for b in range(len(ty))]
    f1 = ner_scores(gold, [[TAGS[t] for t in p] for p in pred])["f1"]
    assert f1 > 0.8  # chance is far below


def test_classifier_shapes_and_padding_invariance():
    torch.manual_seed(0)
    for pooling in ("max", "attention"):
        clf = Classifier(8, 5, hidden=6, dropout=0.0, pooling=pooling).eval()
        x = torch.randn(2, 6, 8)
        mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
        out = clf(x, mask)
        assert out.shape == (2, 5)
        x2 = x.clone()
        x2[1, 3:] = 99.0  # padding content must not matter
        assert torch.allclose(clf(x2, mask), out, atol=1e-6)
        assert torch.allclose(clf(x[1:, :3], mask[1:, :3]), out[1:], atol=1e-6)
