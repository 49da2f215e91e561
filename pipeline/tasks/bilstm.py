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

from pipeline.config import FinetuneConfig
from pipeline.data.batching import cut_sorted
from pipeline.errors import PipelineError
from pipeline.io import WEIGHTS_FILE, check_weights, read_weights, state_dict_cpu
from pipeline.tasks.base import TaskModel
from pipeline.tasks.examples import as_token_lists, tokenizer_for
from pipeline.tasks.features import WORDS_FILE, WordEmbedding, build_features
from pipeline.word2vec import VectorLookup

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
    ):
        """``train_sentences``: a new model's word table and rare words come from them;
        ``words``: a saved model's word table."""
        super().__init__()
        self.cfg = cfg
        self.labels = list(labels)
        self.index = {t: i for i, t in enumerate(self.labels)}
        self.config: dict = {}
        self.features = build_features(cfg, encoder, word2vec, train_sentences, words, word_dim)
        self.tokenize = tokenizer_for(self.features.encoder)
        self.head = self.task.build_head(cfg, self.features.dim, self.features.output_dim, self.labels)

    def loss(self, sentences: list[list[str]], targets: list) -> torch.Tensor:
        """Mean loss of a batch of non-empty sentences (+ the ScalarMix L2 penalty if configured)."""
        loss = self.task.loss(self.head, self.features(sentences), targets, self.index)
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
        out: list = [self.task.empty_prediction for _ in sentences]
        real = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
        for idx in cut_sorted(real, [len(s) for s in sentences], max_rows=batch_size):
            inputs = self.features([list(sentences[i]) for i in idx], store=False)
            for i, p in zip(idx, self.task.decode(self.head, inputs, self.labels)):
                out[i] = p
        return out

    def describe(self) -> str:
        cfg = self.cfg
        return (
            f"BiLSTM on {cfg.inputs} (encoder {'finetuned' if cfg.finetune_encoder else 'frozen'}"
            f"{'; ELMo also at the task BiLSTM output' if cfg.elmo_output else ''})"
        )

    @classmethod
    def for_job(cls, job, splits) -> BiLSTMTaskModel:
        """A new model for ``job`` (its inputs loaded), its word table from the training sentences."""
        encoder, word2vec = job.inputs
        word2vec = word2vec if job.cfg.inputs != "elmo" else None
        return cls(job.cfg, splits.labels, encoder, word2vec, train_sentences=splits.train.sentences)

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` (``tuple(tokens) → layers``) and add new ones to it."""
        if self.features.encoder is not None and not self.cfg.finetune_encoder:
            self.features.share_layers(kept)

    # --- the model directory -----------------------------------------------------------------

    def state_for_saving(self) -> dict[str, torch.Tensor]:
        return state_dict_cpu(self, ("features.bilm.",))  # the biLM goes to encoder/ (finetuned or not)

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write the self-contained model directory atomically."""
        enc, w2v = self.features.encoder, self.features.word2vec
        fields: dict = {"encoder": "encoder" if enc is not None else None, "word2vec": None}
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
        model = cls(cfg, labels, encoder, word2vec, words=words, word_dim=config.get("word_dim"))
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
