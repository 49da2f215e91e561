import pytest

from pipeline.tasks.metrics import classification_scores, ner_scores


def test_ner_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-ORG", "O"]]
    # gold chunks: PER(0,2) LOC(3) ORG(0); predicted: PER(0,2) PER(3) ORG(0) → 2 of 3 correct each way
    s = ner_scores(gold, pred)
    assert s["precision"] == pytest.approx(2 / 3, abs=1e-6) and s["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert s["per_type"]["PER"]["precision"] == 0.5 and s["per_type"]["PER"]["recall"] == 1.0
    assert s["per_type"]["LOC"]["recall"] == 0.0 and s["per_type"]["ORG"]["f1"] == 1.0
    assert s["per_type"]["PER"]["support"] == 1
    # the same sequences written in BIOES score the same
    bioes_gold = [["B-PER", "E-PER", "O", "S-LOC"], ["S-ORG", "O"]]
    bioes_pred = [["B-PER", "E-PER", "O", "S-PER"], ["S-ORG", "O"]]
    assert ner_scores(bioes_gold, bioes_pred, scheme="bioes")["f1"] == s["f1"]


def test_classification_scores_by_hand():
    s = classification_scores(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert s["accuracy"] == 0.5
    # F1: a = 2*.5*.5/1 = .5, b = 2*.5*1/1.5 = 2/3, c = 0 → macro 7/18
    assert s["macro_f1"] == pytest.approx(7 / 18, abs=1e-6)
    assert s["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
