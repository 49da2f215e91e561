"""Finetuning loops for the downstream heads: epochs over shuffled batches, dev score after each
epoch, early stopping, the best weights restored at the end.
"""
from __future__ import annotations

import copy
import random
from typing import Callable

import torch

from pipeline.data.tags import TaggedData
from pipeline.metrics import classification_scores, ner_scores


def _fit(modules: list[torch.nn.Module], loss_of: Callable[[list[int]], torch.Tensor], n_train: int,
         dev_score: Callable[[], float], epochs: int, batch_size: int, lr: float, patience: int,
         seed: int) -> dict:
    """The shared loop: Adam over the modules' trainable parameters, dev score after each epoch,
    early stopping after ``patience`` epochs without improvement, best weights restored."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order = list(range(n_train))
    best, best_state, history, bad_epochs = -1.0, None, [], 0
    for epoch in range(epochs):
        for m in modules:
            m.train()
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        score = dev_score()
        history.append({"epoch": epoch + 1, "train_loss": total / max(n_train, 1), "dev_score": score})
        if score > best:
            best, bad_epochs = score, 0
            best_state = [copy.deepcopy(m.state_dict()) for m in modules]
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                break
    for m, state in zip(modules, best_state):
        m.load_state_dict(state)
    return {"best_dev": best, "epochs_run": len(history), "history": history}


def train_tagger(features, tagger, train: TaggedData, dev: TaggedData, tag_list: list[str], epochs: int = 20,
                 batch_size: int = 32, lr: float = 1e-3, patience: int = 3, seed: int = 0,
                 mix_l2: float = 0.0) -> dict:
    """Train ``tagger`` on ``features`` of ``train``; keep the weights with the best dev entity F1."""
    index = {t: i for i, t in enumerate(tag_list)}

    def loss_of(idx: list[int]) -> torch.Tensor:
        x, mask = features([train.sentences[j] for j in idx])
        y = torch.zeros(mask.shape, dtype=torch.long)
        for b, j in enumerate(idx):
            y[b, : len(train.tags[j])] = torch.tensor([index[t] for t in train.tags[j]])
        loss = tagger.loss(x, mask, y)
        if mix_l2 and features.mix is not None:
            loss = loss + mix_l2 * features.mix.penalty()
        return loss

    return _fit([tagger, features], loss_of, len(train.sentences),
                lambda: evaluate_tagger(features, tagger, dev, tag_list)["f1"], epochs, batch_size, lr, patience, seed)


def train_classifier(features, classifier, train_tokens: list[list[str]], train_labels: list[str],
                     dev_tokens: list[list[str]], dev_labels: list[str], labels: list[str], epochs: int = 20,
                     batch_size: int = 32, lr: float = 1e-3, patience: int = 3, seed: int = 0) -> dict:
    """Train ``classifier`` on ``features`` of tokenized sentences; keep the best dev accuracy."""
    index = {t: i for i, t in enumerate(labels)}

    def loss_of(idx: list[int]) -> torch.Tensor:
        x, mask = features([train_tokens[j] for j in idx])
        y = torch.tensor([index[train_labels[j]] for j in idx])
        return torch.nn.functional.cross_entropy(classifier(x, mask), y)

    def dev_accuracy() -> float:
        pred = predict_labels(features, classifier, dev_tokens, labels)
        return classification_scores(dev_labels, [p for p, _ in pred], labels)["accuracy"]

    return _fit([classifier, features], loss_of, len(train_tokens), dev_accuracy, epochs, batch_size, lr,
                patience, seed)


@torch.no_grad()
def predict_labels(features, classifier, sentences: list[list[str]], labels: list[str], batch_size: int = 64):
    """(label, probabilities) per sentence; an empty sentence gets (None, {})."""
    classifier.eval()
    features.eval()
    out: list[tuple] = [(None, {}) for _ in sentences]
    real = [i for i, s in enumerate(sentences) if s]
    for k in range(0, len(real), batch_size):
        idx = real[k : k + batch_size]
        x, mask = features([sentences[i] for i in idx])
        probs = torch.softmax(classifier(x, mask), dim=-1)
        for i, p in zip(idx, probs.tolist()):
            out[i] = (labels[max(range(len(p)), key=p.__getitem__)], dict(zip(labels, p)))
    return out


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
