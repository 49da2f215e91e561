"""A BiLSTM task model as one ONNX graph (``elmo export --format onnx`` of a task model), and the
task model that runs such a graph in ONNX Runtime (:class:`OnnxTaskModel`, what
:func:`pipeline.tasks.models.load_task_model` returns for an export).

The graph holds everything with weights: the word and casing tables, the task's character CNN,
the biLM (:mod:`pipeline.bilm.exported`, ``<S>``/``</S>`` added in the graph), the scalar mixes and
the head, the task BiLSTM as a scan over time. Its inputs are per-token ids, made by
:func:`graph_inputs` (B texts of at most T tokens; for a pair the second text's inputs carry the
suffix ``_pair``):

- ``lengths`` (B,) int64: each text's number of tokens (at least 1);
- ``words``, ``cases`` (B, T) int64: the row of each lower-cased token in ``words.txt`` (``<UNK>``
  for others) and its casing class (:data:`pipeline.tasks.features.CASES`), with word vectors;
  ``word_vectors`` (B, T, D) float32 with ``word_vectors: lookup`` instead;
- ``chars`` (B, T, 30) int64: each token's UTF-8 byte ids for the task's character CNN
  (:func:`pipeline.data.chars.token_char_ids`), with a character encoder;
- ``elmo_chars`` (B, T, C) int64: the same ids for the biLM (C its ``max_chars``), with ELMo.

Its one output is the task's :meth:`~pipeline.tasks.kinds.Task.outputs`: ``probabilities`` (B, K)
(classify, pair: softmax; multilabel: a sigmoid per label, each compared with the label's
threshold in ``onnx.json``), ``scores`` (B,) in the training targets' units (regress), or
``emissions`` (B, T, K) tag scores (tag, ner), decoded by Viterbi with the CRF's ``transitions``
(K, K), ``start`` and ``end`` scores in ``onnx.json`` (disallowed transitions already at -1e4).
Positions past a text's length hold no meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from pipeline.data.chars import BOS_TOKEN, EOS_TOKEN, PAD_CHAR, padded_char_ids, token_char_ids
from pipeline.errors import PipelineError
from pipeline.tasks.base import TaskModel
from pipeline.tasks.bilstm import BiLSTMTaskModel
from pipeline.tasks.crf import CRF
from pipeline.tasks.features import LookupVectors, TaskCharCNN, WordEmbedding, casing

PAIR_SUFFIX = "_pair"


def side_names(model: BiLSTMTaskModel) -> list[str]:
    """The inputs of one text, in the graph's order."""
    f = model.features
    names = ["lengths"]
    if isinstance(f.words, WordEmbedding):
        names += ["words", "cases"]
    elif isinstance(f.words, LookupVectors):
        names.append("word_vectors")
    if f.chars is not None:
        names.append("chars")
    if f.encoder is not None:
        names.append("elmo_chars")
    return names


def input_names(model: BiLSTMTaskModel) -> list[str]:
    names = side_names(model)
    return names + [n + PAIR_SUFFIX for n in names] if model.pairs else names


class ExportedTaskModel(nn.Module):
    """:class:`BiLSTMTaskModel` as ``(inputs in :func:`input_names` order) → the task's outputs``."""

    special_chars: torch.Tensor  # buffer (2, C): the char ids of <S> and </S>

    def __init__(self, model: BiLSTMTaskModel):
        super().__init__()
        from pipeline.bilm.exported import ExportedBiLM

        self.model = model.eval()
        self.names, self.side_names = input_names(model), side_names(model)
        f = model.features
        self.bilm = ExportedBiLM(f.encoder.model) if f.encoder is not None else None
        if f.encoder is not None:
            special = np.stack([token_char_ids(t, f.encoder.max_chars) for t in (BOS_TOKEN, EOS_TOKEN)])
            self.register_buffer("special_chars", torch.from_numpy(special.astype(np.int64)))  # (2, C)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        t = dict(zip(self.names, tensors))
        inputs = (self.side(t, ""), self.side(t, PAIR_SUFFIX)) if self.model.pairs else self.side(t, "")
        return self.model.task.outputs(self.model.cfg, self.model.head, inputs)

    def side(self, t: dict[str, torch.Tensor], suffix: str) -> tuple:
        """One text's (x (B, T, D), mask (B, T), extra or None), as :class:`Features` makes them."""
        f = self.model.features
        lengths = t["lengths" + suffix]
        B, T = t[self.side_names[1] + suffix].shape[:2]  # a per-token input
        mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        keep = mask[..., None].to(torch.float32)
        parts = []
        if isinstance(f.words, WordEmbedding):
            parts.append(torch.cat([f.words.embedding(t["words" + suffix]), f.words.case(t["cases" + suffix])], -1))
        elif isinstance(f.words, LookupVectors):
            parts.append(t["word_vectors" + suffix])
        if f.chars is not None:
            parts.append(char_cnn(f.chars, t["chars" + suffix]) * keep)
        extra = None
        if self.bilm is not None and f.mix is not None:
            layers = list(self.elmo_layers(t["elmo_chars" + suffix], lengths) * keep)  # L+1 × (B, T, 2P)
            parts.append(f.mix(layers, mask))
            extra = f.output_mix(layers, mask) if f.output_mix is not None else None
        return torch.cat(parts, dim=-1), mask, extra

    def elmo_layers(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C) token char ids → (L+1, B, T, 2P): the biLM over ``[<S>, tokens, </S>]``."""
        assert self.bilm is not None
        B, T, C = chars.shape
        bos, eos = self.special_chars[0], self.special_chars[1]
        rows = torch.cat([bos.expand(B, 1, C), chars, torch.full_like(chars[:, :1], PAD_CHAR)], dim=1)  # (B, T+2, C)
        at_end = (torch.arange(T + 2)[None, :] == (lengths + 1)[:, None])[..., None]  # (B, T+2, 1)
        rows = torch.where(at_end, eos.expand(B, T + 2, C), rows)
        return self.bilm(rows, lengths + 2)[:, :, 1 : T + 1]


def char_cnn(cnn: TaskCharCNN, chars: torch.Tensor) -> torch.Tensor:
    """:class:`TaskCharCNN` over every position: (B, T, C) ids → (B, T, F), zero where all padding."""
    B, T, C = chars.shape
    flat = chars.reshape(B * T, C)
    h = cnn.conv(cnn.embed(flat).transpose(1, 2))  # (B*T, F, C)
    pad = (flat == PAD_CHAR)[:, None, :]
    vecs = h.masked_fill(pad, -1e30).amax(dim=2)  # (B*T, F); -1e30 (not -inf): an all-padding row stays finite
    return vecs.reshape(B, T, -1)


def graph_inputs(model: BiLSTMTaskModel, batch: Sequence) -> dict[str, np.ndarray]:
    """The graph's inputs for a batch of non-empty examples (token lists, or pairs of them)."""
    if model.pairs:
        first = side_inputs(model, [e[0] for e in batch])
        second = side_inputs(model, [e[1] for e in batch])
        return {**first, **{k + PAIR_SUFFIX: v for k, v in second.items()}}
    return side_inputs(model, batch)


def side_inputs(model: BiLSTMTaskModel, sentences: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    f = model.features
    B, T = len(sentences), max(len(s) for s in sentences)
    out = {"lengths": np.array([len(s) for s in sentences], dtype=np.int64)}
    if isinstance(f.words, WordEmbedding):
        unk = f.words.index["<UNK>"]
        out["words"], out["cases"] = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
        for b, s in enumerate(sentences):
            out["words"][b, : len(s)] = [f.words.index.get(t.lower(), unk) for t in s]
            out["cases"][b, : len(s)] = [casing(t) for t in s]
    elif isinstance(f.words, LookupVectors):
        out["word_vectors"] = f.words(sentences, B, T).numpy()
    if f.chars is not None:
        out["chars"] = padded_char_ids(sentences, TaskCharCNN.MAX_CHARS, T)
    if f.encoder is not None:
        out["elmo_chars"] = padded_char_ids([f.encoder.as_tokens(s) for s in sentences], f.encoder.max_chars, T)
    return out


def decoding_fields(model: BiLSTMTaskModel) -> dict:
    """What decoding needs besides the graph's output, for ``onnx.json``: a CRF's scores, a
    multi-label head's thresholds, the labels."""
    fields: dict = {"task": model.cfg.task, "labels": model.labels, "output": model.task.output_name}
    if model.task.target == "tags":
        crf = cast(CRF, model.head.crf)
        fields["crf"] = {"transitions": crf._trans().tolist(), "start": crf._start().tolist(), "end": crf.end.tolist()}
    if model.task.target == "labels":
        fields["thresholds"] = model.head.get_buffer("thresholds").tolist()
    return fields


class OnnxTaskModel(TaskModel):
    """A BiLSTM task model whose graph runs in ONNX Runtime: the same tokenization, batching and
    decoding as the PyTorch model (``torch_model``, loaded from the same directory), one graph
    call per batch."""

    runtime = "onnxruntime"

    def __init__(self, torch_model: BiLSTMTaskModel, graph: Path):
        from pipeline.encoder import onnx_session

        self.torch_model = torch_model
        self.cfg, self.labels, self.config = torch_model.cfg, torch_model.labels, torch_model.config
        self.tokenize, self.pairs = torch_model.tokenize, torch_model.pairs
        self.graph = graph
        self.session = onnx_session(graph)
        wanted = {i.name for i in self.session.get_inputs()}
        if wanted != set(input_names(torch_model)):
            raise PipelineError(
                f"{graph}: its inputs ({', '.join(sorted(wanted))}) are not this model's "
                f"({', '.join(input_names(torch_model))}): the directory was mixed; export it again"
            )

    def outputs(self, batch: list) -> torch.Tensor:
        (out,) = self.session.run(None, graph_inputs(self.torch_model, batch))
        return torch.from_numpy(out)

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        return self.torch_model.predict_with(self.outputs, sentences, batch_size)

    def save(self, directory, extra=None) -> None:
        raise PipelineError("an ONNX export is not saved again: export the PyTorch model once more")

    def describe(self) -> str:
        return self.torch_model.describe() + "; run in ONNX Runtime"
