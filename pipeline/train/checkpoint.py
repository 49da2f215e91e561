"""Training checkpoints and saved biLM weights. Every write is a temp directory + rename.

A checkpoint directory ``step-NNNNNNN/`` holds ``model.safetensors`` (weights), ``optimizer.pt``
and ``state.pt`` (scheduler, RNG states, data position: tensors and plain values only, loaded with
``weights_only=True`` so no code is unpickled) and ``state.json`` (the same position, readable).
A model directory (``best/``) holds ``model.safetensors`` and ``config.json``; checkpoints hold
``config.json`` too, so either can be exported or evaluated.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pipeline.config import ModelConfig
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def save_model_dir(path: Path, model: torch.nn.Module, config: dict) -> None:
    with atomic_path(path, marker=CONFIG_FILE) as tmp:
        tmp.mkdir()
        save_file(_state_dict_for_save(model), str(tmp / MODEL_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_bilm(path: str | Path, device: str | torch.device = "cpu"):
    """Load a biLM saved by the pretrain stage (``best/``): returns (model, config dict)."""
    from pipeline.model import BiLM

    path = Path(path)
    cfg_file, weights = path / CONFIG_FILE, path / MODEL_FILE
    for f in (cfg_file, weights):
        if not f.is_file():
            raise PipelineError(f"{path}: not a saved biLM ({f.name} missing)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
        model_cfg = ModelConfig(**config["model"])
        model_cfg.validate(str(cfg_file))
        model = BiLM(model_cfg, int(config["vocab_size"]))
        state = load_file(str(weights), device=str(device))
    except PipelineError:
        raise
    except Exception as e:  # bad JSON, missing or mistyped fields, corrupt safetensors
        raise PipelineError(f"{path}: cannot load the saved biLM: {type(e).__name__}: {e}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise PipelineError(f"{weights}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), config


def model_config_dict(cfg: ModelConfig, vocab_size: int, max_chars: int, extra: dict | None = None) -> dict:
    return {"model": dataclasses.asdict(cfg), "vocab_size": vocab_size, "max_chars": max_chars, **(extra or {})}


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def save_checkpoint(ckpt_dir: Path, step: int, model, optimizer, state: dict, keep: int, config: dict) -> Path:
    """Write ``ckpt_dir/step-NNNNNNN`` atomically; delete all but the newest ``keep``."""
    target = ckpt_dir / checkpoint_name(step)
    with atomic_path(target, marker="state.pt") as tmp:
        tmp.mkdir()
        save_file(_state_dict_for_save(model), str(tmp / MODEL_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # loadable by load_bilm
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(state, tmp / "state.pt")
        readable = {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, type(None)))}
        (tmp / "state.json").write_text(json.dumps(readable, indent=2) + "\n", encoding="utf-8")
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.pt").is_file())


def load_checkpoint(path: Path, model, optimizer) -> dict:
    model.load_state_dict(load_file(str(path / MODEL_FILE)))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return torch.load(path / "state.pt", weights_only=True)
