"""Training checkpoints and the saved best biLM, as model directories (:mod:`pipeline.io`).

A checkpoint directory ``step-NNNNNNN/`` (kind ``checkpoint``) holds ``model.safetensors``
(weights), ``config.json`` (architecture, so it can be exported or evaluated like ``best/``),
``optimizer.pt`` and ``state.pt`` (scheduler, RNG states, data position: tensors and plain values
only, loaded with ``weights_only=True`` so no code is unpickled) and ``state.json`` (the same
position, readable). ``best/`` (kind ``bilm``) holds ``model.safetensors`` and ``config.json``.
Both load with :func:`pipeline.bilm.model.load_bilm`.

A finetuning checkpoint (kind ``finetune-checkpoint``, one directory replaced whole each time)
holds the task model's ``model.safetensors``, ``optimizer.pt`` and ``state.pt`` (position, RNG
states, the best-so-far bookkeeping with its weights) and ``config.json`` (the settings'
fingerprint and the position, readable).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError

from pipeline.config import ModelConfig
from pipeline.errors import PipelineError
from pipeline.io import read_weights, state_dict_cpu, write_json, write_model_dir


def settings_fingerprint(settings: dict) -> str:
    """The identity of a run's settings (pretraining or finetuning): a checkpoint resumes only a run
    with the same one. ``settings``: JSON-able, without the budgets that may change on resumption."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# what reading a damaged checkpoint raises (truncated safetensors/torch files, bad JSON, missing keys)
DAMAGED = (
    PipelineError,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    RuntimeError,
    pickle.UnpicklingError,
    SafetensorError,
)


def save_model_dir(path: Path, model: torch.nn.Module, config: dict) -> None:
    """The best model so far (``best/``)."""
    write_model_dir(path, "bilm", config, state_dict_cpu(model))


def model_config_dict(cfg: ModelConfig, vocab_size: int, max_chars: int, extra: dict | None = None) -> dict:
    return {"model": dataclasses.asdict(cfg), "vocab_size": vocab_size, "max_chars": max_chars, **(extra or {})}


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def save_checkpoint(ckpt_dir: Path, step: int, model, optimizer, state: dict, keep: int, config: dict) -> Path:
    """Write ``ckpt_dir/step-NNNNNNN`` atomically; delete all but the newest ``keep``."""
    target = ckpt_dir / checkpoint_name(step)

    def side_files(tmp: Path) -> None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(state, tmp / "state.pt")
        write_json(
            tmp / "state.json", {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, type(None)))}
        )

    write_model_dir(target, "checkpoint", config, state_dict_cpu(model), side_files)
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(
        p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.pt").is_file()
    )


def load_checkpoint(path: Path, model, optimizer) -> dict:
    model.load_state_dict(read_weights(path))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return torch.load(path / "state.pt", weights_only=True)


FINETUNE_KIND = "finetune-checkpoint"


def save_finetune_checkpoint(path: Path, model, optimizer, state: dict, config: dict) -> None:
    """Replace ``path`` with the finetuning state (atomically)."""

    def side_files(tmp: Path) -> None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(state, tmp / "state.pt")

    write_model_dir(path, FINETUNE_KIND, config, state_dict_cpu(model), side_files)


def load_finetune_checkpoint(path: Path, model, optimizer) -> dict:
    """Restore weights and optimizer from ``path``; return its ``state.pt`` (no code unpickled)."""
    model.load_state_dict(read_weights(path))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return torch.load(path / "state.pt", weights_only=True)
