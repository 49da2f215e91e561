"""The neural task model (``model: bilstm``): inputs ([word ; casing ; chars ; ELMo mix], see
:mod:`pipeline.tasks.features`) + the task's head (BiLSTM-CRF tagger or BiLSTM classifier).

Model directory (the common part: :mod:`pipeline.tasks.base`)::

    config.json          the common fields + word_dim, encoder, word2vec
    model.safetensors    word table, casing, char CNN, head and ScalarMix weights (not the biLM's)
    words.txt            the word table's words, one a line (trainable or frozen word vectors)
    encoder/             a copy of the exported encoder (with finetuned weights if any)
    word2vec.safetensors the word2vec matrix + word2vec.vocab.txt (``word_vectors: lookup`` only)
    README.md            a model card

Sentence inputs are token lists; raw text is tokenized with the encoder's tokenizer (the ptb
tokenizer without an encoder), so word2vec vectors and biLM tokens agree with how they were trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.config import FinetuneConfig, with_values
from pipeline.data.batching import cut_sorted
from pipeline.errors import PipelineError
from pipeline.io import WEIGHTS_FILE, check_weights, read_weights, state_dict_cpu
from pipeline.tasks.base import TaskModel
from pipeline.tasks.examples import as_examples, example_length, sides, tokenizer_for
from pipeline.tasks.features import WORDS_FILE, WordEmbedding, build_features
from pipeline.word2vec import VectorLookup

BILSTM_FILES = (WORDS_FILE, "encoder", "word2vec.safetensors", "word2vec.vocab.txt")  # its side files

# --- the model ---------------------------------------------------------------------------------


class BiLSTMTaskModel(nn.Module, TaskModel):
    """Features + the task's head. ``labels`` is the ordered label (ner: tag) set."""

    def __init__(
        self,
        cfg: FinetuneConfig,
        labels: list[str],
        encoder=None,
        word2vec: VectorLookup | None = None,
        train_sentences: Sequence[Sequence[str]] = (),
        words: list[str] | None = None,
        word_dim: int | None = None,
        pairs: bool = False,
    ):
        """``train_sentences``: a new model's word table and rare words come from them;
        ``words``: a saved model's word table; ``pairs``: its examples are pairs of texts."""
        super().__init__()
        self.cfg = cfg
        self.labels = list(labels)
        self.pairs = pairs
        self.index = {t: i for i, t in enumerate(self.labels)}
        self.config: dict = {}
        # a pair's two sides get no dropout in their inputs (see heads.PairClassifier)
        inputs_cfg = with_values(cfg, {"head": {"dropout": 0.0}, "inputs": {"elmo_dropout": 0.0}}) if pairs else cfg
        self.features = build_features(inputs_cfg, encoder, word2vec, train_sentences, words, word_dim)
        self.tokenize = tokenizer_for(self.features.encoder)
        self.head = self.task.build_head(cfg, self.features.dim, self.features.output_dim, self.labels, pairs)

    def encode(self, examples: list, store: bool = True) -> tuple:
        """The head's inputs: (x, mask, extra) of the texts, or one such triple per side of pairs."""
        if self.pairs:
            return tuple(self.features([e[k] for e in examples], store=store) for k in (0, 1))
        return self.features(examples, store=store)

    def loss(self, sentences: list, targets: list) -> torch.Tensor:
        """Mean loss of a batch of non-empty examples (+ the ScalarMix L2 penalty if configured)."""
        loss = self.task.loss(self.head, self.encode(sentences), targets, self.index)
        if self.cfg.inputs.mix_l2:
            for mix in (self.features.mix, self.features.output_mix):
                if mix is not None:
                    loss = loss + self.cfg.inputs.mix_l2 * mix.penalty()
        return loss

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        """ner: a tag list per sentence; classify: (label, {label: probability}) per sentence.
        A sentence is a token list or raw text (tokenized like ``Encoder.embed``). An empty
        sentence gets [] or (None, {}), not an error."""
        return self.predict_with(self.outputs, sentences, batch_size)

    @torch.no_grad()
    def predict_with(self, outputs, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        """:meth:`predict` with the head's outputs of a batch from ``outputs(batch)`` (this model's
        own :meth:`outputs`, or its ONNX graph's: :class:`pipeline.tasks.onnx.OnnxTaskModel`)."""
        examples = as_examples(sentences, self.tokenize, self.pairs)
        self.eval()
        out: list = [self.task.empty_prediction for _ in examples]
        lengths = [example_length(e) for e in examples]
        real = sorted((i for i, e in enumerate(examples) if all(sides(e))), key=lambda i: lengths[i])
        for idx in cut_sorted(real, lengths, max_rows=batch_size):
            batch = [examples[i] for i in idx]
            for i, p in zip(idx, self.task.decode(self.cfg, self.head, outputs(batch), batch, self.labels)):
                out[i] = p
        return out

    def outputs(self, batch: list) -> torch.Tensor:
        """The head's outputs for a batch of non-empty examples (:meth:`Task.outputs`)."""
        return self.task.outputs(self.cfg, self.head, self.encode(batch, store=False))

    def set_thresholds(self, thresholds: list[float]) -> None:
        """A multi-label head's decision thresholds (picked on dev)."""
        self.head.get_buffer("thresholds").copy_(torch.tensor(thresholds))

    def describe(self) -> str:
        cfg = self.cfg
        return (
            f"BiLSTM on {cfg.inputs.use} (encoder {'finetuned' if cfg.training.finetune_encoder else 'frozen'}"
            f"{'; ELMo also at the task BiLSTM output' if cfg.head.elmo_output else ''})"
        )

    @classmethod
    def for_job(cls, job, splits) -> BiLSTMTaskModel:
        """A new model for ``job`` (its inputs loaded), its word table from the training sentences."""
        encoder, word2vec = job.inputs
        word2vec = word2vec if job.cfg.inputs.use != "elmo" else None
        texts = [s for e in splits.train.sentences for s in sides(e)]
        model = cls(job.cfg, splits.labels, encoder, word2vec, train_sentences=texts, pairs=splits.pairs)
        model.task.init_head(model.head, splits.train)
        return model

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` (``tuple(tokens) → layers``) and add new ones to it."""
        if self.features.encoder is not None and not self.cfg.training.finetune_encoder:
            self.features.share_layers(kept)

    # --- the model directory -----------------------------------------------------------------

    def state_for_saving(self) -> dict[str, torch.Tensor]:
        return state_dict_cpu(self, ("features.bilm.",))  # the biLM goes to encoder/ (finetuned or not)

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write the self-contained model directory atomically."""
        enc, w2v = self.features.encoder, self.features.word2vec
        fields: dict = {"encoder": "encoder" if enc is not None else None, "word2vec": None, "pairs": self.pairs}
        if isinstance(self.features.words, WordEmbedding):
            fields["word_dim"] = self.features.words.word_dim
        if w2v is not None:
            fields["word2vec"] = {
                "vectors": "word2vec.safetensors",
                "vocab": "word2vec.vocab.txt",
                "oov_vector": w2v.oov_vector,
                "seed": w2v.seed,
            }
        config = self.saved_config(fields, extra)

        def side_files(tmp: Path) -> None:
            if enc is not None:
                enc.save_pretrained(tmp / "encoder")
            if w2v is not None:
                _save_word2vec(tmp, w2v)
            if isinstance(self.features.words, WordEmbedding):
                self.features.words.save_words(tmp)

        self.write_dir(directory, config, self.state_for_saving(), side_files)

    @classmethod
    def load(cls, d: Path, config: dict, cfg: FinetuneConfig, labels: list[str]) -> BiLSTMTaskModel:
        """The model in directory ``d`` (its config.json already read: :func:`pipeline.tasks.base.read_saved`)."""
        encoder = word2vec = None
        if config.get("encoder"):
            from pipeline.encoder import Encoder

            encoder = Encoder.from_pretrained(d / config["encoder"])
        if config.get("word2vec"):
            word2vec = _load_word2vec(d, config["word2vec"])
        words = None
        if (d / WORDS_FILE).is_file():
            words = (d / WORDS_FILE).read_text(encoding="utf-8").split("\n")[:-1]  # our own file: \n only
        pairs = bool(config.get("pairs", False))
        model = cls(cfg, labels, encoder, word2vec, words=words, word_dim=config.get("word_dim"), pairs=pairs)
        state = read_weights(d)
        check_weights(d / WEIGHTS_FILE, state, model.state_for_saving())
        model.load_state_dict(state, strict=False)
        model.config = config
        return model.eval()


def _save_word2vec(d: Path, w2v: VectorLookup) -> None:
    from safetensors.torch import save_file

    kv = w2v.kv
    save_file(
        {"vectors": torch.from_numpy(np.ascontiguousarray(kv.vectors, dtype=np.float32))},
        str(d / "word2vec.safetensors"),
    )
    (d / "word2vec.vocab.txt").write_text("".join(w + "\n" for w in kv.index_to_key), encoding="utf-8")


def _load_word2vec(d: Path, spec: dict) -> VectorLookup:
    from gensim.models import KeyedVectors

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
