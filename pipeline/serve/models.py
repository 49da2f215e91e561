"""What each served directory answers: a task model ``predict``s (its records: labels and
probabilities, tags per token, entities, scores), an encoder ``embed``s (chosen layers or a
mix of them, per token or pooled). Each is named by its directory's name; requests choose among
the loaded models by that name, so no path from a request is ever opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ServeConfig
from pipeline.errors import PipelineError
from pipeline.io import directory_kind
from pipeline.serve.requests import RequestError, check_fields, examples_of, json_type

CARD_LINES = 12  # the model card's first lines in /metadata


@dataclass
class Served:
    """One loaded directory: its ``name``, the route it answers and its examples' reader."""

    name: str
    path: Path
    route: str  # "predict" or "embed"
    model: Any
    info: dict = field(default_factory=dict)

    def card(self) -> list[str]:
        readme = self.path / "README.md"
        if not readme.is_file():
            return []
        return [line for line in readme.read_text(encoding="utf-8", errors="replace").splitlines() if line][:CARD_LINES]

    def metadata(self) -> dict:
        return {"name": self.name, "route": f"/{self.route}", **self.info, "card": self.card()}

    def read(self, data: dict, cfg: ServeConfig) -> list:
        """A request's body → the model's examples (a :class:`RequestError` for anything wrong)."""
        raise NotImplementedError

    def run(self, examples: list) -> list:
        """The model on ``examples`` (in the model thread): a result per example."""
        raise NotImplementedError

    def answer(self, data: dict, results: list) -> dict:
        """The response body's fields for a request's results (beside ``model``)."""
        raise NotImplementedError


class ServedTaskModel(Served):
    FIELDS = {
        "model": "the served model's name (needed when several are served)",
        "texts": "an array of texts (strings, or arrays of tokens)",
        "pairs": "an array of [text, text] pairs (a pair model)",
    }

    def read(self, data: dict, cfg: ServeConfig) -> list:
        key = "pairs" if self.model.pairs else "texts"
        check_fields(data, self.FIELDS, ())
        other = "texts" if key == "pairs" else "pairs"
        if other in data or key not in data:
            what = "pairs of texts" if key == "pairs" else "texts, not pairs"
            raise RequestError(422, f"model {self.name!r} reads {what}: give {key!r}")
        return examples_of(data, key, self.model.tokenize, cfg, pairs=self.model.pairs)

    def run(self, examples: list) -> list[dict]:
        return self.model.records(examples)

    def answer(self, data: dict, results: list) -> dict:
        return {"predictions": results}


class ServedEncoder(Served):
    FIELDS = {
        "model": "the served model's name (needed when several are served)",
        "texts": "an array of texts (strings, or arrays of tokens)",
        "layers": "'all' (default), 'top', 'average', or an array of layer numbers (0: the token layer)",
        "mix": "weights of the layers, one per layer: their weighted sum (a scalar mix) instead of 'layers'",
        "pool": "'none' (a vector per token, default), 'mean' or 'max' (a vector per text)",
    }

    def read(self, data: dict, cfg: ServeConfig) -> list:
        check_fields(data, self.FIELDS, ("texts",))
        shape = self.answer_shape(data)
        examples = examples_of(data, "texts", self.model.tokenize, cfg)
        per_token = data.get("pool", "none") == "none"
        values = sum(len(t) if per_token else 1 for t in examples) * shape
        if values > cfg.max_embed_values:
            raise RequestError(
                413,
                f"the answer would hold {values:,} numbers, over the bound of {cfg.max_embed_values:,} "
                f"(--max-embed-values): pool the vectors, ask for fewer layers, or send fewer texts",
            )
        return examples

    def answer_shape(self, data: dict) -> int:
        """Numbers per vector position in the answer (checks ``layers``, ``mix`` and ``pool``)."""
        n, dim = self.model.n_layers, self.model.dim
        if data.get("pool", "none") not in ("none", "mean", "max"):
            raise RequestError(422, f"pool: expected 'none', 'mean' or 'max', got {data['pool']!r}")
        if "mix" in data:
            if "layers" in data:
                raise RequestError(422, "give 'layers' or 'mix', not both")
            mix = data["mix"]
            if not (isinstance(mix, list) and len(mix) == n and all(_number(w) for w in mix)):
                raise RequestError(422, f"mix: expected an array of {n} numbers (one per layer), got {json_type(mix)}")
            return dim
        layers = data.get("layers", "all")
        return dim if layers == "average" else len(self.layer_numbers(layers)) * dim

    def layer_numbers(self, layers: Any) -> list[int]:
        n = self.model.n_layers
        named = {"all": list(range(n)), "top": [n - 1], "average": list(range(n))}
        if isinstance(layers, str) and layers in named:
            return named[layers]
        if isinstance(layers, list) and layers and all(_int(i) and 0 <= i < n for i in layers):
            return list(layers)
        raise RequestError(
            422, f"layers: expected 'all', 'top', 'average' or layer numbers 0 to {n - 1}, got {layers!r}"
        )

    def run(self, examples: list) -> list[np.ndarray]:
        return self.model.embed(examples)  # (L+1, n, 2P) each

    def answer(self, data: dict, results: list) -> dict:
        """The vectors a request asked for (``results``: (L+1, n, 2P) per text), as JSON arrays."""
        mix = np.asarray(data["mix"], dtype=np.float32) if "mix" in data else None
        layers = None if mix is not None else self.layer_numbers(data.get("layers", "all"))
        pool = data.get("pool", "none")
        out = []
        for a in results:
            if mix is not None:
                v = np.tensordot(mix, a, axes=1)[None]  # (1, n, 2P)
            else:
                v = a[layers]  # (k, n, 2P)
                if data.get("layers") == "average":
                    v = v.mean(0, keepdims=True)
            if pool != "none":
                v = v.mean(1) if pool == "mean" else v.max(1)  # (k, 2P)
            v = v[0] if v.shape[0] == 1 else v
            out.append(np.round(v.astype(np.float64), 6).tolist())
        return {"embeddings": out}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def load_served(directories: list[str], log=print) -> dict[str, Served]:
    """Each directory loaded (a task model or an encoder), by its name, said as it starts (a large
    encoder takes seconds); one line for anything else."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        ours = version("elmo-pipeline")
    except PackageNotFoundError:
        ours = "unknown"
    versions = {"elmo-pipeline": ours, "torch": torch.__version__}
    served: dict[str, Served] = {}
    for d in map(Path, directories):
        name = d.resolve().name
        if name in served:
            raise PipelineError(
                f"{d}: two served models named {name!r}: serve them from directories of different names"
            )
        log(f"loading {d} ...")
        served[name] = _load_one(d, name, versions)
    return served


def _load_one(d: Path, name: str, versions: dict) -> Served:
    kind = directory_kind(d)
    if kind == "task-model":
        from pipeline.tasks.models import load_task_model

        m = load_task_model(d)
        info = {"kind": "task model", "task": m.cfg.task, "model_type": m.cfg.model, "labels": m.labels,
                "pairs": m.pairs, "format_version": m.config.get("format_version"), "runtime": m.runtime,
                "versions": versions}  # fmt: skip
        return ServedTaskModel(name, d, "predict", m, info)
    if kind == "encoder":
        from pipeline.encoder import Encoder

        e = Encoder.from_pretrained(d)
        info = {"kind": "encoder", "layers": e.n_layers, "dim": e.dim, "runtime": e.runtime, "versions": versions}
        return ServedEncoder(name, d, "embed", e, info)
    raise PipelineError(
        f"{d}: not a task model (`elmo finetune --out`) or an encoder (`elmo export`) directory: nothing to serve"
    )
