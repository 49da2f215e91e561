import random

from pipeline.data.tags import TaggedData
from pipeline.export import Encoder
from pipeline.features import Features
from pipeline.heads import Tagger
from pipeline.train.finetune import evaluate_tagger, predict_tags, train_tagger
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
    assert result["best_dev_f1"] > 0.9 and after > 0.8 and after > before + 0.5
    assert predict_tags(features, tagger, [[], ["John", "said"]], tags)[0] == []
