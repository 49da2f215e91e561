"""Writing an exported encoder directory from a trained biLM (``elmo export``, the export stage).

The directory format and the API to use it are in :mod:`pipeline.encoder`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipeline.bilm.model import load_bilm
from pipeline.data.prepared import PreparedData
from pipeline.data.tokenizers import SP_MODEL_FILE, make_tokenizer
from pipeline.encoder import ENCODER_FILES, ENCODER_FORMAT, ENCODER_KIND, Encoder
from pipeline.errors import PipelineError
from pipeline.io import check_replaceable, directory_kind, output_lock, run_record


def training_data(
    model_dir: str | Path,
    train_cfg: dict,
    prepared: str | Path | None = None,
    hint: str = "pass the prepared data it was trained on (--prepared)",
) -> PreparedData:
    """The prepared data a saved biLM was trained on (its vocabulary, tokenizer, casing, char ids):
    ``prepared``, else the directory recorded at training, else ``data/prepared``; one line naming
    ``model_dir`` and ending in ``hint`` when it is not there or holds another vocabulary."""
    path = Path(prepared or train_cfg.get("prepared_dir") or "data/prepared")
    if directory_kind(path) != "prepared-data":
        raise PipelineError(
            f"{model_dir}: its prepared data {path} is not there (its vocabulary, tokenizer and "
            f"casing are needed); {hint}"
        )
    data = PreparedData(path)
    data.check_trained_on(model_dir, train_cfg, hint)
    return data


def export_encoder(
    model_dir: str | Path,
    out_dir: str | Path,
    prepared_dir: str | Path | None = None,
    with_softmax: bool = False,
    test_metrics: dict | None = None,
    presets: list[str] | None = None,
) -> Path:
    """Turn a trained biLM (``models/pretrain/best`` or a checkpoint) into an encoder directory."""
    check_replaceable(out_dir, ENCODER_KIND, ENCODER_FILES)  # a bad output path fails before any work
    with output_lock(out_dir):  # one run per output directory
        model, train_cfg = load_bilm(model_dir)
        data = training_data(model_dir, train_cfg, prepared_dir)
        prepared_dir = data.dir
        meta = data.meta
        exported = sum(v.numel() for k, v in model.state_dict().items() if with_softmax or not k.startswith("softmax."))
        config = {
            "kind": ENCODER_KIND,
            "format_version": ENCODER_FORMAT,
            "model": dataclasses.asdict(model.cfg),
            "vocab_size": len(data.vocab),
            "max_chars": data.max_chars,
            "char_ids": meta["char_ids"],
            "specials": meta["specials"],
            "tokenizer": {
                "type": meta["tokenizer"],
                "lowercase": meta["lowercase"],
                "model_file": meta.get("tokenizer_model"),
            },
            "with_softmax": with_softmax,
            "training": {
                "sources": meta.get("sources", []),
                "presets": presets,
                "train_tokens": meta["stats"]["train_tokens"],
                "train_sentences": meta["stats"]["train_sentences"],
                "steps": train_cfg.get("step"),
                "valid": train_cfg.get("valid"),
                "test": test_metrics,
                "parameters_exported": exported,
                "stopped_by": _stopped_by(Path(model_dir)),
                **run_record(),
            },
        }
        tokenizer = make_tokenizer(meta["tokenizer"], meta["lowercase"], prepared_dir / SP_MODEL_FILE)
        Encoder(model, config, data.vocab, tokenizer).save_pretrained(out_dir)
        return Path(out_dir)


def _stopped_by(model_dir: Path) -> str | None:
    """What ended the pretraining run ``model_dir`` comes from (its run.json), if known."""
    for run in (model_dir.parent / "run.json", model_dir.parent.parent / "run.json"):  # best/ or checkpoints/step-N
        if run.is_file():
            try:
                return json.loads(run.read_text(encoding="utf-8")).get("stopped_by")
            except ValueError:
                return None
    return None
