"""Domain-adaptive LM tuning (ULMFiT-style, Howard & Ruder 2018): continue training a biLM on
unlabelled in-domain text, then export it for finetuning.

    elmo adapt models/encoder-lm data/raw/my_domain.txt models/encoder-adapted --minutes 10

The source is an encoder exported with its softmax (``elmo export --with-softmax``) or a
pretraining output (``best/`` or a checkpoint) whose prepared data is still where training
recorded it. The text is prepared with the source's tokenizer, casing and vocabulary — the softmax
keeps its rows, so words outside the vocabulary are ``<UNK>`` targets as in pretraining (their
characters still reach the char CNN) — with a share held out for validation. The biLM then trains
from the source's weights in the pretraining loop (accelerate, checkpoints, resume after an
interruption, live curves) in a work directory beside the output, and the best-validation model is
exported with its softmax (so it can be scored, sampled or adapted again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.bilm.model import load_bilm
from pipeline.config import PrepareConfig, PretrainConfig
from pipeline.data.prepare import prepare_corpus
from pipeline.data.prepared import PreparedData
from pipeline.data.tokenizers import SP_MODEL_FILE
from pipeline.encoder import ENCODER_FILES, ENCODER_KIND, Encoder
from pipeline.errors import PipelineError
from pipeline.export import export_encoder, training_data
from pipeline.io import check_replaceable, check_run_paths, directory_kind
from pipeline.lm import perplexities
from pipeline.train.evaluate import prepared_lm_sums
from pipeline.train.pretrain import pretrain

# adaptation defaults: a few passes over the in-domain text at a lower rate than pretraining
DEFAULTS: dict[str, Any] = dict(epochs=3, lr=1e-3, eval_every=50, checkpoint_every=50, keep_checkpoints=1, log_every=10)


def _source(source: Path):
    """(model, vocab, tokenizer settings, max chars, SentencePiece model or None) of a biLM that has
    its softmax; a one-line error for one that cannot be adapted."""
    kind = directory_kind(source)
    if kind == ENCODER_KIND:
        enc = Encoder.from_pretrained(source)
        if not enc.has_softmax:
            raise PipelineError(
                f"{source}: this encoder has no softmax, so it cannot be adapted (a language model "
                f"needs one); export it with `elmo export --with-softmax`, or adapt its best/ directory"
            )
        sp = source / SP_MODEL_FILE if (source / SP_MODEL_FILE).is_file() else None
        enc.model.requires_grad_(True)  # from_pretrained freezes an encoder's weights; adapting trains them
        return enc.model, enc.vocab, enc.config.get("tokenizer", {}), enc.max_chars, sp
    if kind not in ("bilm", "checkpoint"):
        raise PipelineError(f"{source}: not an encoder or a pretraining output (best/ or a checkpoint) to adapt")
    model, train_cfg = load_bilm(source)
    data = training_data(source, train_cfg, hint="export it with --with-softmax and adapt the encoder instead")
    meta = data.meta
    sp = data.dir / SP_MODEL_FILE if meta["tokenizer"] == "sentencepiece" else None
    return model, data.vocab, {"type": meta["tokenizer"], "lowercase": meta["lowercase"]}, data.max_chars, sp


def adapt(
    source: str | Path,
    text: str,
    out_dir: str | Path,
    cfg: PretrainConfig | None = None,
    valid_fraction: float = 0.05,
    work_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Adapt ``source`` to the corpus spec ``text`` (a file, directory, glob, …); write the adapted
    encoder to ``out_dir``. Returns metrics: held-out perplexity before and after, steps, seconds."""
    source, out_dir = Path(source), Path(out_dir)
    check_run_paths({"out_dir": out_dir}, {"source": source, "text": text})
    check_replaceable(out_dir, ENCODER_KIND, ENCODER_FILES)
    cfg = cfg or PretrainConfig(**DEFAULTS)
    work = Path(work_dir) if work_dir else out_dir.with_name(out_dir.name + ".adapt")
    model, vocab, tok, max_chars, sp = _source(source)
    prep_cfg = PrepareConfig(
        corpus=str(text),
        valid_fraction=valid_fraction,
        test_fraction=0.01,
        min_count=1,
        lowercase=bool(tok.get("lowercase")),
        tokenizer=tok.get("type", "whitespace"),
        max_chars=max_chars,
    )
    prep_cfg.validate("elmo adapt")
    stats = prepare_corpus(prep_cfg, work / "prepared", progress=False, vocab=vocab, sp_model=sp)
    data = PreparedData(work / "prepared")
    before = perplexities(*prepared_lm_sums(model, data, "valid", cfg.eval_max_tokens).tolist())["average_ppl"]
    metrics = pretrain(
        model.cfg,
        cfg,
        work / "prepared",
        work / "model",
        work / "metrics.json",
        work / "plots",
        progress=progress,
        init_state=model.state_dict(),
    )
    export_encoder(work / "model" / "best", out_dir, work / "prepared", with_softmax=True)
    result = {
        "source": str(source),
        "text": str(text),
        "train_sentences": stats["train_sentences"],
        "train_tokens": stats["train_tokens"],
        "valid_oov_rate": stats["valid_oov_rate"],
        "valid_ppl_before": before,
        "valid_ppl_after": metrics["best_valid_average_ppl"],
        "steps": metrics["steps"],
        "minutes": metrics["train_minutes_this_run"],
        "work_dir": str(work),
    }
    (work / "adapt.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
