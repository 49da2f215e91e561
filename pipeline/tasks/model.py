"""A finetuned downstream model: inputs ([word ; casing ; chars ; ELMo mix], see
:mod:`pipeline.tasks.features`) + a head, its predictions, scores, and its self-contained directory.

Model directory (``TaskModel.save`` / ``TaskModel.load``; no pickle anywhere)::

    config.json          kind "task-model", format version, task, label set, the finetune config,
                         dev/test scores
    model.safetensors    word table, casing, char CNN, head and ScalarMix weights (not the biLM's)
    words.txt            the word table's words, one a line (trainable or frozen word vectors)
    encoder/             a copy of the exported encoder (with finetuned weights if any)
    word2vec.safetensors the word2vec matrix + word2vec.vocab.txt (``word_vectors: lookup`` only)
    README.md            a model card

Sentence inputs are token lists; raw text is tokenized with the encoder's tokenizer (whitespace
without an encoder), so word2vec vectors and biLM tokens agree with how they were trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.config import FinetuneConfig
from pipeline.data.batching import cut_sorted
from pipeline.data.tags import to_spans
from pipeline.errors import PipelineError
from pipeline.io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_weights,
    read_model_config,
    read_weights,
    state_dict_cpu,
    write_model_dir,
)
from pipeline.tasks.crf import crf_constraints
from pipeline.tasks.data import TaskData, as_token_lists, tokenizer_for
from pipeline.tasks.features import WORDS_FILE, WordEmbedding, build_features
from pipeline.tasks.heads import Classifier, Tagger

FORMAT_VERSION = 2  # 2: trainable word table (words.txt), casing and char CNN inputs
KIND = "task-model"
METRIC = {"ner": "f1", "classify": "accuracy"}  # the dev score that picks the best model


# --- the model ---------------------------------------------------------------------------------


class TaskModel(nn.Module):
    """Features + head for one task. ``labels`` is the ordered label (ner: tag) set."""

    def __init__(
        self,
        cfg: FinetuneConfig,
        labels: list[str],
        encoder=None,
        word2vec=None,
        train_sentences: Sequence[Sequence[str]] = (),
        words: list[str] | None = None,
        word_dim: int | None = None,
    ):
        """``train_sentences``: a new model's word table and rare words come from them;
        ``words``: a saved model's word table."""
        super().__init__()
        self.cfg = cfg
        self.labels = list(labels)
        self.index = {t: i for i, t in enumerate(self.labels)}
        self.features = build_features(cfg, encoder, word2vec, train_sentences, words, word_dim)
        self.tokenize = tokenizer_for(self.features.encoder)
        if cfg.task == "ner":
            allowed, start = crf_constraints(self.labels, cfg.model_scheme)
            self.head = Tagger(
                self.features.dim,
                len(self.labels),
                cfg.hidden,
                cfg.dropout,
                allowed,
                start,
                extra_dim=self.features.output_dim,
            )
        else:
            self.head = Classifier(
                self.features.dim,
                len(self.labels),
                cfg.hidden,
                cfg.dropout,
                cfg.pooling,
                extra_dim=self.features.output_dim,
            )

    def loss(self, sentences: list[list[str]], targets: list) -> torch.Tensor:
        """Mean loss of a batch of non-empty sentences (+ the ScalarMix L2 penalty if configured)."""
        x, mask, out = self.features(sentences)
        if self.cfg.task == "ner":
            y = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
            for b, tags in enumerate(targets):
                y[b, : len(tags)] = torch.tensor([self.index[t] for t in tags])
            loss = self.head.loss(x, mask, y, out)
        else:
            y = torch.tensor([self.index[t] for t in targets], device=x.device)
            loss = torch.nn.functional.cross_entropy(self.head(x, mask, out), y)
        if self.cfg.mix_l2:
            for mix in (self.features.mix, self.features.output_mix):
                if mix is not None:
                    loss = loss + self.cfg.mix_l2 * mix.penalty()
        return loss

    @torch.no_grad()
    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        """ner: a tag list per sentence; classify: (label, {label: probability}) per sentence.
        A sentence is a token list or raw text (tokenized like ``Encoder.embed``). An empty
        sentence gets [] or (None, {}), not an error."""
        sentences = as_token_lists(sentences, self.tokenize)
        self.eval()
        ner = self.cfg.task == "ner"
        out: list = [[] if ner else (None, {}) for _ in sentences]
        real = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
        for idx in cut_sorted(real, [len(s) for s in sentences], max_rows=batch_size):
            x, mask, extra = self.features([list(sentences[i]) for i in idx], store=False)
            if ner:
                for i, path in zip(idx, self.head.decode(x, mask, extra)):
                    out[i] = [self.labels[t] for t in path]
            else:
                probs = torch.softmax(self.head(x, mask, extra), dim=-1).cpu()
                for i, p in zip(idx, probs.tolist()):
                    out[i] = (self.labels[int(np.argmax(p))], dict(zip(self.labels, p)))
        return out

    def scores(self, data: TaskData, pred: list | None = None) -> dict:
        """ner: entity P/R/F1 overall and per type (seqeval); classify: accuracy, macro-F1, confusion.
        ``pred``: this model's predictions for ``data`` if already made."""
        from pipeline.tasks.metrics import classification_scores, ner_scores

        pred = self.predict(data.sentences) if pred is None else pred
        if self.cfg.task == "ner":
            return ner_scores(data.targets, pred, self.cfg.model_scheme)
        return classification_scores(data.targets, [p for p, _ in pred], self.labels)

    def dev_metric(self, scores: dict) -> float:
        return scores[METRIC[self.cfg.task]]

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` (``tuple(tokens) → layers``) and add new ones to it."""
        if self.features.encoder is not None and not self.cfg.finetune_encoder:
            self.features.share_layers(kept)

    def entities(self, tokens: list[str], tags: list[str]) -> list[dict]:
        spans, _ = to_spans(tags, self.cfg.model_scheme)
        return [{"label": label, "start": s, "end": e, "text": " ".join(tokens[s:e])} for label, s, e in spans]

    # --- the model directory -----------------------------------------------------------------

    def state_for_saving(self) -> dict[str, torch.Tensor]:
        return state_dict_cpu(self, ("features.bilm.",))  # the biLM goes to encoder/ (finetuned or not)

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write the self-contained model directory atomically."""
        enc, w2v = self.features.encoder, self.features.word2vec
        config = {
            "format_version": FORMAT_VERSION,
            "task": self.cfg.task,
            "labels": self.labels,
            "finetune": dataclasses.asdict(self.cfg),
            "encoder": "encoder" if enc is not None else None,
            "word2vec": None,
            **(extra or {}),
        }
        if isinstance(self.features.words, WordEmbedding):
            config["word_dim"] = self.features.words.word_dim
        if w2v is not None:
            config["word2vec"] = {
                "vectors": "word2vec.safetensors",
                "vocab": "word2vec.vocab.txt",
                "oov_vector": w2v.oov_vector,
                "seed": w2v.seed,
            }

        def side_files(tmp: Path) -> None:
            if enc is not None:
                enc.save_pretrained(tmp / "encoder")
            if w2v is not None:
                _save_word2vec(tmp, w2v)
            if isinstance(self.features.words, WordEmbedding):
                self.features.words.save_words(tmp)
            (tmp / "README.md").write_text(model_card(config), encoding="utf-8")

        write_model_dir(directory, KIND, config, self.state_for_saving(), side_files)

    @classmethod
    def load(cls, directory: str | Path) -> TaskModel:
        d = Path(directory)
        config = read_model_config(
            d, KIND, FORMAT_VERSION, hint="; a task model comes from `elmo finetune` (an encoder goes to --encoder)"
        )
        from pipeline.config import check_section

        cfg_file = d / CONFIG_FILE
        try:
            section = dict(config["finetune"])
            cfg = FinetuneConfig(**check_section(FinetuneConfig, section, f"{cfg_file}: finetune"))
            labels = [str(x) for x in config["labels"]]
        except (KeyError, TypeError) as e:
            raise PipelineError(f"{cfg_file}: missing or bad field ({e})") from None
        if cfg.model in ("tfidf", "linear"):
            from pipeline.tasks.linear import LinearClassifier

            return LinearClassifier.load(d, config, cfg)
        if cfg.model == "ensemble":
            from pipeline.tasks.ensemble import EnsembleClassifier

            return EnsembleClassifier.load(d, config, cfg)
        encoder = word2vec = None
        if config.get("encoder"):
            from pipeline.encoder import Encoder

            encoder = Encoder.from_pretrained(d / config["encoder"])
        if config.get("word2vec"):
            word2vec = _load_word2vec(d, config["word2vec"])
        words = None
        if (d / WORDS_FILE).is_file():
            words = (d / WORDS_FILE).read_text(encoding="utf-8").split("\n")[:-1]  # our own file: \n only
        model = cls(cfg, labels, encoder, word2vec, words=words, word_dim=config.get("word_dim"))
        state = read_weights(d)
        check_weights(d / WEIGHTS_FILE, state, model.state_for_saving())
        model.load_state_dict(state, strict=False)
        model.config = config
        return model.eval()


def _save_word2vec(d: Path, w2v) -> None:
    from safetensors.torch import save_file

    kv = w2v.kv
    save_file(
        {"vectors": torch.from_numpy(np.ascontiguousarray(kv.vectors, dtype=np.float32))},
        str(d / "word2vec.safetensors"),
    )
    (d / "word2vec.vocab.txt").write_text("".join(w + "\n" for w in kv.index_to_key), encoding="utf-8")


def _load_word2vec(d: Path, spec: dict):
    from gensim.models import KeyedVectors

    from pipeline.word2vec import VectorLookup

    try:
        vectors = read_weights(d / spec["vectors"])["vectors"].numpy()
    except KeyError:
        raise PipelineError(f"{d / spec.get('vectors', '?')}: no word2vec vectors in it") from None
    words = (d / spec["vocab"]).read_text(encoding="utf-8").split("\n")[:-1]
    if len(words) != len(vectors):
        raise PipelineError(f"{d / spec['vocab']}: {len(words)} words for {len(vectors)} vectors")
    kv = KeyedVectors(vector_size=vectors.shape[1])
    if words:
        kv.add_vectors(words, vectors)
    return VectorLookup(kv, spec.get("oov_vector", "random"), int(spec.get("seed", 0)))


def model_card(config: dict) -> str:
    f = config["finetune"]
    inputs = {
        "tfidf": f"TF-IDF + logistic regression (C={config.get('C')})",
        "linear": f"TF-IDF + pooled ELMo layers, logistic regression (C={config.get('C')})",
        "ensemble": f"the mean probabilities of {', '.join(config.get('members') or [])}",
    }.get(
        f.get("model"),
        f"{f['inputs']} (encoder {'finetuned' if f['finetune_encoder'] else 'frozen'}"
        f"{'; ELMo also at the task BiLSTM output' if f.get('elmo_output') else ''})",
    )
    lines = [
        f"# {config['task']} model (elmo-pipeline)",
        "",
        f"- inputs: {inputs}",
        f"- labels ({len(config['labels'])}): {', '.join(config['labels'])}",
        f"- trained on: {f['train']} (dev {f['dev']})",
    ]
    for split in ("dev", "test"):
        s = config.get(f"{split}_scores")
        if s:
            key = METRIC[config["task"]]
            lines.append(f"- {split} {key}: {s[key]:.4f}")
    if config.get("candidates"):
        how = (
            "kept by `model: auto`, the best dev"
            if config.get("selected_by", "auto") == "auto"
            else f"`model: {config['selected_by']}`; dev"
        )
        lines.append(
            f"- {how} {METRIC[config['task']]} among: "
            + ", ".join(f"{name} {c['dev']:.4f}" for name, c in config["candidates"].items())
        )
    lines += [
        "",
        "Use: `elmo predict --model THIS_DIR input.txt` (one sentence per line) or "
        "`elmo evaluate --model THIS_DIR labelled_file`.",
        "",
    ]
    return "\n".join(lines)


def load_word2vec_lookup(path: str | Path, seed: int = 0):
    from pipeline.word2vec import VectorLookup, load_vectors

    return VectorLookup(load_vectors(path), "random", seed)


def predict_file(model, input_path, out, encoding_errors: str = "error", stats=None, chunk_lines: int = 1000) -> int:
    """Predict every line of a text file and write one JSON object per line to the text stream
    ``out`` as it goes (``chunk_lines`` at a time: memory stays flat for any file size).
    Returns the number of lines."""
    import json

    from pipeline.data.lines import input_chunks

    n = 0
    for chunk in input_chunks(input_path, chunk_lines, encoding_errors, stats):
        records = predictions_as_records(model, [model.tokenize(text) for _, text in chunk])
        out.write(
            "".join(json.dumps({"line": i + 1, **r}, ensure_ascii=False) + "\n" for (i, _), r in zip(chunk, records))
        )
        n += len(chunk)
    return n


def predictions_as_records(model: TaskModel, sentences: list[list[str]]) -> list[dict]:
    """JSON-able prediction records: ner → tokens, tags, entities (token spans, end exclusive);
    classify → label and probabilities."""
    out = []
    for toks, pred in zip(sentences, model.predict(sentences)):
        rec: dict = {"tokens": toks}
        if model.cfg.task == "ner":
            rec["tags"] = pred
            rec["entities"] = model.entities(toks, pred) if toks else []
        else:
            rec["label"], rec["probabilities"] = pred[0], {k: round(v, 6) for k, v in pred[1].items()}
        out.append(rec)
    return out
