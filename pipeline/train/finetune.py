"""Finetuning loops for the downstream heads: epochs over shuffled batches, dev score after each
epoch, early stopping, the best weights restored at the end.
"""
from __future__ import annotations

import copy
import random

import torch

from pipeline.data.tags import TaggedData
from pipeline.metrics import ner_scores


def train_tagger(features, tagger, train: TaggedData, dev: TaggedData, tag_list: list[str], epochs: int = 20,
                 batch_size: int = 32, lr: float = 1e-3, patience: int = 3, seed: int = 0,
                 mix_l2: float = 0.0) -> dict:
    """Train ``tagger`` on ``features`` of ``train``; keep the weights with the best dev entity F1."""
    index = {t: i for i, t in enumerate(tag_list)}
    params = [p for p in list(tagger.parameters()) + list(features.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order = list(range(len(train.sentences)))
    best, best_state, history, bad_epochs = -1.0, None, [], 0
    for epoch in range(epochs):
        tagger.train()
        features.train()
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x, mask = features([train.sentences[j] for j in idx])
            y = torch.zeros(mask.shape, dtype=torch.long)
            for b, j in enumerate(idx):
                y[b, : len(train.tags[j])] = torch.tensor([index[t] for t in train.tags[j]])
            loss = tagger.loss(x, mask, y)
            if mix_l2 and features.mix is not None:
                loss = loss + mix_l2 * features.mix.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        f1 = evaluate_tagger(features, tagger, dev, tag_list)["f1"]
        history.append({"epoch": epoch + 1, "train_loss": total / max(len(order), 1), "dev_f1": f1})
        if f1 > best:
            best, bad_epochs = f1, 0
            best_state = (copy.deepcopy(tagger.state_dict()), copy.deepcopy(features.state_dict()))
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                break
    tagger.load_state_dict(best_state[0])
    features.load_state_dict(best_state[1])
    return {"best_dev_f1": best, "epochs_run": len(history), "history": history}


@torch.no_grad()
def predict_tags(features, tagger, sentences: list[list[str]], tag_list: list[str], batch_size: int = 64):
    tagger.eval()
    features.eval()
    out: list[list[str]] = [[] for _ in sentences]
    real = [i for i, s in enumerate(sentences) if s]  # an empty sentence gets no tags, not an error
    for k in range(0, len(real), batch_size):
        idx = real[k : k + batch_size]
        x, mask = features([sentences[i] for i in idx])
        for i, path in zip(idx, tagger.decode(x, mask)):
            out[i] = [tag_list[t] for t in path]
    return out


def evaluate_tagger(features, tagger, data: TaggedData, tag_list: list[str]) -> dict:
    pred = predict_tags(features, tagger, data.sentences, tag_list)
    return ner_scores(data.tags, pred)
