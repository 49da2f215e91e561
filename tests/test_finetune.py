import random

from pipeline.data.tags import TaggedData
from pipeline.export import Encoder
from pipeline.features import Features
from pipeline.heads import Tagger
from pipeline.train.finetune import evaluate_tagger, predict_labels, predict_tags, train_classifier, train_tagger
from test_export import trained  # noqa: F401  (a small trained and exported biLM)

PEOPLE = ["John", "Mary", "Howard", "Arafat", "Peter", "Sharon"]
PLACES = ["Sydney", "Paris", "Canberra", "Gaza", "London"]
TEMPLATES = [("{p} said in {l} .", "PER O O LOC O"), ("{p} visited {l} today .", "PER O LOC O O"),
             ("The fire near {l} spread .", "O O O LOC O O"), ("Police said {p} was safe .", "O O PER O O O")]


def tiny_ner(n, seed):
    rng = random.Random(seed)
    data = TaggedData()
    for _ in range(n):
        text, labels = rng.choice(TEMPLATES)
        words = text.format(p=rng.choice(PEOPLE), l=rng.choice(PLACES)).split()
        assert len(words) == len(labels.split())
        data.sentences.append(words)
        data.tags.append(["O" if t == "O" else f"B-{t}" for t in labels.split()])
    return data


def test_tiny_tagger_learns_a_tiny_ner_set_on_elmo_features(trained):  # noqa: F811
    enc = Encoder.from_pretrained(trained / "enc")
    train, dev, test = tiny_ner(80, 0), tiny_ner(30, 1), tiny_ner(30, 2)
    tags = ["O", "B-PER", "B-LOC"]
    features = Features(encoder=enc, elmo_dropout=0.0, layer_norm=True)
    tagger = Tagger(features.dim, len(tags), hidden=16, dropout=0.0)
    before = evaluate_tagger(features, tagger, test, tags)["f1"]
    result = train_tagger(features, tagger, train, dev, tags, epochs=40, batch_size=16, lr=0.03, patience=10)
    after = evaluate_tagger(features, tagger, test, tags)["f1"]
    assert result["best_dev"] > 0.9 and after > 0.8 and after > before + 0.5
    assert predict_tags(features, tagger, [[], ["John", "said"]], tags)[0] == []


def test_tiny_classifier_learns_word_polarity():
    """word2vec-only features (fixed random vectors per word): the classifier must learn which words matter."""
    from gensim.models import KeyedVectors

    from pipeline.heads import Classifier
    from pipeline.word2vec import VectorLookup

    rng = random.Random(0)
    pos, neg, filler = ["good", "great", "fine"], ["bad", "awful", "poor"], ["the", "film", "was", "a", "plot"]

    def make(n):
        toks, labels = [], []
        for _ in range(n):
            y = rng.choice(["0", "1"])
            words = rng.sample(filler, 3) + [rng.choice(pos if y == "1" else neg)]
            rng.shuffle(words)
            toks.append(words)
            labels.append(y)
        return toks, labels

    kv = KeyedVectors(vector_size=8)  # empty: every word gets its fixed random vector
    features = Features(word2vec=VectorLookup(kv, "random"))
    clf = Classifier(features.dim, 2, hidden=8, dropout=0.0)
    (tx, ty), (dx, dy), (sx, sy) = make(120), make(40), make(40)
    r = train_classifier(features, clf, tx, ty, dx, dy, ["0", "1"], epochs=30, batch_size=16, lr=0.02, patience=10)
    pred = predict_labels(features, clf, sx + [[]], ["0", "1"])
    acc = sum(p == y for (p, _), y in zip(pred, sy)) / len(sy)
    assert r["best_dev"] > 0.9 and acc > 0.9
    assert pred[-1] == (None, {}) and abs(sum(pred[0][1].values()) - 1) < 1e-6
