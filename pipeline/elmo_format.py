"""The ELMo weight format of bilm-tf and AllenNLP: an ``options.json`` and a weights ``.hdf5``.

:func:`import_elmo` turns such a pair (the released ELMo models, anything dumped by bilm-tf's
``dump_weights``) into an encoder directory of ours; :func:`export_elmo` writes the pair from a
biLM trained here, for AllenNLP's ``Elmo(options_file, weight_file)`` and the tools built on it.

The weight file (``d`` = 0 forward LM, 1 backward LM; ``l`` = LSTM layer)::

    char_embed                      (261, E)     row r = character id r (below)
    CNN/W_cnn_i, CNN/b_cnn_i        (1, w, E, n), (n,)   TF conv layout: (…, width, in, out)
    CNN_high_k/W_transform, b_transform, W_carry, b_carry    (F, F), (F,)   TF: x W + b
    CNN_proj/W_proj, b_proj         (F, P), (P,)
    RNN_d/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0    (2P, 4H)  rows [input ; recurrent], gates i, j, f, o
                                        …/B      (4H,)     TF adds forget_bias 1.0 when it runs
                                        …/W_P_0  (H, P)    the projection

How each maps to ours (the same mapping as AllenNLP's loaders):

- **character ids**: bilm-tf's are UTF-8 bytes 0–255, 256 begin/257 end of sentence, 258 begin/259
  end of word, 260 padding — ours exactly (:mod:`pipeline.data.chars`), so ``char_embed``'s 261 rows
  are our 261 rows. At inference bilm-tf's ``Batcher`` and AllenNLP add 1 to every id and keep 0 for
  the padding *tokens* past a sentence's end, with a zero row put in front of ``char_embed``: hence
  ``n_characters: 262`` in the released options. Those padding tokens never reach a real position,
  so the unshifted ids give the same activations (proven on the reference fixture in the tests).
- **highway**: TF computes ``t * relu(x Wt + bt) + (1 - t) * x`` with ``t = sigmoid(x Wc + bc)``;
  ours is ``g * x + (1 - g) * relu(h)``, so ``g = 1 - t = sigmoid(-(x Wc + bc))``: the gate rows
  are ``-Wcᵀ`` and ``-bc`` (negation is exact, so round trips are bit-identical).
- **LSTM**: TF's gate order (i, j, f, o) becomes nn.LSTM's (i, f, g, o); ``B`` goes to ``bias_ih``
  and TF's constant forget bias 1.0 to ``bias_hh`` (exported back as ``B = bias_ih + bias_hh − 1·f``,
  which is exact for imported weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.bilm.model import BiLM, load_bilm
from pipeline.config import ModelConfig
from pipeline.data.chars import BOS_CHAR, BOW_CHAR, EOS_CHAR, EOW_CHAR, N_CHAR_IDS, PAD_CHAR
from pipeline.data.tokenizers import WhitespaceTokenizer
from pipeline.encoder import ENCODER_FILES, ENCODER_FORMAT, ENCODER_KIND, Encoder
from pipeline.errors import PipelineError
from pipeline.export import training_data
from pipeline.io import atomic_path, check_not_special, check_replaceable, directory_kind, output_lock

OPTIONS_FILE, WEIGHTS_HDF5 = "options.json", "weights.hdf5"  # what export_elmo writes
EXPORT_MARK = "elmo_pipeline"  # a key of the options.json export_elmo writes (readers ignore unknown keys)
ACTIVATIONS = ("relu", "tanh")
GATES_TF_TO_TORCH = [0, 2, 1, 3]  # (i, j, f, o) → (i, f, j, o); the permutation is its own inverse


def _lstm_path(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


# --- options.json ↔ ModelConfig --------------------------------------------------------------


def _field(options: dict, path: str, kind, source: str, minimum: int | None = None):
    """``options[a][b]`` for path "a.b", checked to be a ``kind`` (at least ``minimum``); a one-line
    error naming the key otherwise."""
    value: Any = options
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PipelineError(f"{source}: {path} missing (not a bilm-tf options file?)")
        value = value[part]
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if not ok:
        raise PipelineError(f"{source}: {path} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    if minimum is not None and value < minimum:
        raise PipelineError(f"{source}: {path} must be at least {minimum}, got {value}")
    return value


def _read_options_json(path: Path) -> dict:
    source = str(path)
    if path.is_dir():
        raise PipelineError(f"{source}: is a directory; give the model's options.json file")
    check_not_special(path, "options file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{source}: options file not found") from None
    except OSError as e:
        raise PipelineError(f"{source}: cannot read the options file ({e.strerror or e})") from None
    if raw.startswith(b"\x89HDF"):
        raise PipelineError(
            f"{source}: is an HDF5 file, not options JSON: give the options file first, then the weights"
        )
    try:
        options = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        raise PipelineError(f"{source}: not a readable JSON options file ({e})") from None
    if not isinstance(options, dict):
        raise PipelineError(f"{source}: not a JSON object")
    return options


def read_options(path: str | Path) -> tuple[ModelConfig, int]:
    """options.json → (our ModelConfig, max characters per token); a bad file is a one-line error."""
    source, options = str(path), _read_options_json(Path(path))
    if "char_cnn" not in options:
        raise PipelineError(f"{source}: char_cnn missing: only character-input ELMo models are supported")
    activation = _field(options, "char_cnn.activation", str, source)
    if activation not in ACTIVATIONS:
        raise PipelineError(f"{source}: char_cnn.activation {activation!r} is unknown (bilm-tf has relu, tanh)")
    n_chars = _field(options, "char_cnn.n_characters", int, source)
    if n_chars not in (261, 262):
        raise PipelineError(f"{source}: char_cnn.n_characters must be 261 or 262 (ids shifted by one), got {n_chars}")
    filters = _field(options, "char_cnn.filters", list, source)
    if not filters or not all(
        isinstance(f, list) and len(f) == 2 and all(type(v) is int and v > 0 for v in f) for f in filters
    ):
        raise PipelineError(f"{source}: char_cnn.filters must be a list of [width, filters] pairs, got {filters!r}")
    max_chars = _field(
        options, "char_cnn.max_characters_per_token", int, source, minimum=max(3, *(w for w, _ in filters))
    )
    P, H = _field(options, "lstm.projection_dim", int, source, 1), _field(options, "lstm.dim", int, source, 1)
    if P >= H:
        raise PipelineError(
            f"{source}: lstm.projection_dim ({P}) must be below lstm.dim ({H}): "
            f"LSTMs without a projection are not supported"
        )
    clips = [options["lstm"].get(k) for k in ("cell_clip", "proj_clip")]
    for key, clip in zip(("cell_clip", "proj_clip"), clips):
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
            raise PipelineError(f"{source}: lstm.{key} must be a positive number or null, got {clip!r}")
    cfg = ModelConfig(
        char_embed_dim=_field(options, "char_cnn.embedding.dim", int, source, 1),
        filters=[list(f) for f in filters],
        n_highway=_field(options, "char_cnn.n_highway", int, source, 0),
        char_activation=activation,
        projection_dim=P,
        cell_dim=H,
        n_layers=_field(options, "lstm.n_layers", int, source, 1),
        # bilm-tf reads a missing use_skip_connections as false
        skip_connections=bool(options["lstm"].get("use_skip_connections", False)),
        cell_clip=None if clips[0] is None else float(clips[0]),
        proj_clip=None if clips[1] is None else float(clips[1]),
        dropout=0.0,
        softmax="full",
    )
    cfg.validate(source)
    return cfg, max_chars


def options_of(cfg: ModelConfig, max_chars: int) -> dict:
    """Our ModelConfig → a bilm-tf options dict (as the released models' options.json)."""
    # cell_clip / proj_clip always present (null = none): AllenNLP reads them without a default
    lstm = {
        "dim": cfg.cell_dim,
        "projection_dim": cfg.projection_dim,
        "n_layers": cfg.n_layers,
        "use_skip_connections": cfg.skip_connections,
        "cell_clip": cfg.cell_clip,
        "proj_clip": cfg.proj_clip,
    }
    return {
        EXPORT_MARK: {"written_by": "elmo export --format elmo"},  # how a later export knows the folder is ours
        "bidirectional": True,
        "char_cnn": {
            "activation": cfg.char_activation,
            "embedding": {"dim": cfg.char_embed_dim},
            "filters": cfg.filters,
            "max_characters_per_token": max_chars,
            "n_characters": N_CHAR_IDS + 1,
            "n_highway": cfg.n_highway,
        },
        "lstm": lstm,
    }


# --- weight arrays ↔ our state dict -------------------------------------------------------------


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every dataset of a weight file for ``cfg`` and its shape."""
    E, F, P, H = cfg.char_embed_dim, cfg.n_filters, cfg.projection_dim, cfg.cell_dim
    shapes: dict[str, tuple[int, ...]] = {"char_embed": (N_CHAR_IDS, E)}
    for i, (w, n) in enumerate(cfg.filters):
        shapes[f"CNN/W_cnn_{i}"], shapes[f"CNN/b_cnn_{i}"] = (1, w, E, n), (n,)
    for k in range(cfg.n_highway):
        for part in ("carry", "transform"):
            shapes[f"CNN_high_{k}/W_{part}"], shapes[f"CNN_high_{k}/b_{part}"] = (F, F), (F,)
    shapes["CNN_proj/W_proj"], shapes["CNN_proj/b_proj"] = (F, P), (P,)
    for d in (0, 1):
        for layer in range(cfg.n_layers):
            p = _lstm_path(d, layer)
            shapes[f"{p}/W_0"], shapes[f"{p}/B"], shapes[f"{p}/W_P_0"] = (2 * P, 4 * H), (4 * H,), (H, P)
    return shapes


def _gates(x: np.ndarray, H: int) -> np.ndarray:
    """Reorder the 4 gate blocks along axis 0 between TF's and PyTorch's order (either way)."""
    return np.concatenate([x[g * H : (g + 1) * H] for g in GATES_TF_TO_TORCH], axis=0)


def _forget_one(H: int) -> np.ndarray:
    """(4H,) with 1.0 on nn.LSTM's forget gate: TF's run-time forget_bias, kept in bias_hh."""
    one = np.zeros(4 * H, dtype=np.float32)
    one[H : 2 * H] = 1.0
    return one


def state_from_arrays(arrays: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Weight-file arrays (names of :func:`expected_shapes`) → our BiLM state dict (no softmax)."""
    P, H = cfg.projection_dim, cfg.cell_dim
    s = {"token_encoder.cnn.embed.weight": arrays["char_embed"]}
    for i in range(len(cfg.filters)):
        s[f"token_encoder.cnn.convs.{i}.weight"] = arrays[f"CNN/W_cnn_{i}"][0].transpose(2, 1, 0)  # (n, E, w)
        s[f"token_encoder.cnn.convs.{i}.bias"] = arrays[f"CNN/b_cnn_{i}"]
    for k in range(cfg.n_highway):
        a = {n: arrays[f"CNN_high_{k}/{n}"] for n in ("W_transform", "W_carry", "b_transform", "b_carry")}
        s[f"token_encoder.highway.layers.{k}.weight"] = np.concatenate([a["W_transform"].T, -a["W_carry"].T])
        s[f"token_encoder.highway.layers.{k}.bias"] = np.concatenate([a["b_transform"], -a["b_carry"]])
    s["token_encoder.proj.weight"] = arrays["CNN_proj/W_proj"].T
    s["token_encoder.proj.bias"] = arrays["CNN_proj/b_proj"]
    for d, stack in enumerate(("forward_stack", "backward_stack")):
        for layer in range(cfg.n_layers):
            p, q = _lstm_path(d, layer), f"{stack}.layers.{layer}.lstm"
            w = _gates(arrays[f"{p}/W_0"].T, H)  # (4H, 2P), our gate order
            s[f"{q}.weight_ih_l0"], s[f"{q}.weight_hh_l0"] = w[:, :P], w[:, P:]
            s[f"{q}.bias_ih_l0"], s[f"{q}.bias_hh_l0"] = _gates(arrays[f"{p}/B"], H), _forget_one(H)
            s[f"{q}.weight_hr_l0"] = arrays[f"{p}/W_P_0"].T
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in s.items()}


def arrays_from_state(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Our BiLM state dict → weight-file arrays (the inverse of :func:`state_from_arrays`)."""
    a = {k: v.detach().cpu().float().numpy() for k, v in state.items() if not k.startswith("softmax.")}
    H, F = cfg.cell_dim, cfg.n_filters
    out = {"char_embed": a["token_encoder.cnn.embed.weight"]}
    for i in range(len(cfg.filters)):
        out[f"CNN/W_cnn_{i}"] = a[f"token_encoder.cnn.convs.{i}.weight"].transpose(2, 1, 0)[None]  # (1, w, E, n)
        out[f"CNN/b_cnn_{i}"] = a[f"token_encoder.cnn.convs.{i}.bias"]
    for k in range(cfg.n_highway):
        w, b = a[f"token_encoder.highway.layers.{k}.weight"], a[f"token_encoder.highway.layers.{k}.bias"]
        out[f"CNN_high_{k}/W_transform"], out[f"CNN_high_{k}/W_carry"] = w[:F].T, -w[F:].T
        out[f"CNN_high_{k}/b_transform"], out[f"CNN_high_{k}/b_carry"] = b[:F], -b[F:]
    out["CNN_proj/W_proj"], out["CNN_proj/b_proj"] = a["token_encoder.proj.weight"].T, a["token_encoder.proj.bias"]
    for d, stack in enumerate(("forward_stack", "backward_stack")):
        for layer in range(cfg.n_layers):
            p, q = _lstm_path(d, layer), f"{stack}.layers.{layer}.lstm"
            w = np.concatenate([a[f"{q}.weight_ih_l0"], a[f"{q}.weight_hh_l0"]], axis=1)  # (4H, 2P)
            out[f"{p}/W_0"] = _gates(w, H).T
            out[f"{p}/B"] = _gates(a[f"{q}.bias_ih_l0"] + (a[f"{q}.bias_hh_l0"] - _forget_one(H)), H)
            out[f"{p}/W_P_0"] = a[f"{q}.weight_hr_l0"].T
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# --- the HDF5 file ---------------------------------------------------------------------------------


def read_weight_file(path: str | Path, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """The arrays ``cfg`` needs from a bilm-tf weight file, each checked (present, shape, finite)."""
    import h5py

    source = str(path)
    if Path(path).is_dir():
        raise PipelineError(f"{source}: is a directory; give the model's weights .hdf5 file")
    if not Path(path).is_file():
        raise PipelineError(f"{source}: weight file not found")
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise PipelineError(f"{source}: not a readable HDF5 file ({e})") from None
    arrays, expected = {}, expected_shapes(cfg)
    with h5:
        _refuse_unexpected(h5, expected, source)
        for name, shape in expected.items():
            try:
                node = h5.get(name)
            except (KeyError, OSError, RuntimeError) as e:
                raise PipelineError(f"{source}: cannot read dataset {name} (a damaged file? {e})") from None
            if not isinstance(node, h5py.Dataset):
                raise PipelineError(
                    f"{source}: dataset {name} missing (options.json implies it; not a bilm-tf "
                    f"weight file, options from another model, or a damaged file)"
                )
            if tuple(node.shape) != shape:
                raise PipelineError(
                    f"{source}: dataset {name} has shape {tuple(node.shape)}, options.json implies {shape}"
                )
            try:
                value = np.asarray(node[...], dtype=np.float32)
            except (TypeError, ValueError, OSError) as e:
                raise PipelineError(f"{source}: dataset {name} is not numeric ({e})") from None
            if not np.isfinite(value).all():
                raise PipelineError(f"{source}: dataset {name} holds NaN or infinite values")
            arrays[name] = value
    return arrays


# datasets that belong to the architecture: a file with more of them than the options imply is
# another model's (fewer layers in the options would silently drop its top layers)
STRUCTURAL = re.compile(r"^(CNN/W_cnn_\d+|CNN/b_cnn_\d+|CNN_high_\d+/.*|RNN_\d+/RNN/MultiRNNCell/Cell\d+/.*)$")


def _refuse_unexpected(h5, expected: dict, source: str) -> None:
    names: list[str] = []
    h5.visit(names.append)
    extra = sorted(n for n in names if STRUCTURAL.match(n) and n not in expected and hasattr(h5[n], "shape"))
    if extra:
        raise PipelineError(
            f"{source}: dataset {extra[0]} is not implied by options.json (its n_layers, n_highway "
            f"or filters describe a smaller model: options from another model?)"
        )


def write_weight_file(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as h5:
        for name in sorted(arrays):
            h5.create_dataset(name, data=arrays[name])


# --- import and export -----------------------------------------------------------------------------


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def imported_config(cfg: ModelConfig, max_chars: int, options: str | Path, weights: str | Path) -> dict:
    """config.json of an encoder imported from ELMo weight files: no vocabulary, no softmax, cased
    whitespace tokens (as ELMo was trained), the character ids recorded."""
    return {
        "kind": ENCODER_KIND,
        "format_version": ENCODER_FORMAT,
        "model": dataclasses.asdict(cfg),
        "vocab_size": 0,
        "max_chars": max_chars,
        "char_ids": {
            "bos": BOS_CHAR,
            "eos": EOS_CHAR,
            "bow": BOW_CHAR,
            "eow": EOW_CHAR,
            "pad": PAD_CHAR,
            "n": N_CHAR_IDS,
            "convention": "bilm-tf (AllenNLP's ids minus 1; char_embed rows as stored)",
        },
        "specials": [],
        "tokenizer": {"type": "whitespace", "lowercase": False, "model_file": None},
        "with_softmax": False,
        "training": {
            "sources": [f"ELMo weights {Path(weights).name} (imported)"],
            "imported_from": {"options": str(options), "weights": str(weights), "weights_sha256": _sha256(weights)},
        },
    }


def import_elmo(options: str | Path, weights: str | Path, out_dir: str | Path) -> Path:
    """ELMo ``options.json`` + weights ``.hdf5`` → an encoder directory at ``out_dir`` (atomically)."""
    check_replaceable(out_dir, ENCODER_KIND, ENCODER_FILES)
    with output_lock(out_dir):
        cfg, max_chars = read_options(options)
        state = state_from_arrays(read_weight_file(weights, cfg), cfg)
        model = BiLM(cfg, vocab_size=0)
        model.load_state_dict(state)
        config = imported_config(cfg, max_chars, options, weights)
        config["training"]["parameters_exported"] = model.n_params()
        Encoder(model, config, None, WhitespaceTokenizer(lowercase=False)).save_pretrained(out_dir)
        return Path(out_dir)


def _load_for_export(src: Path, prepared: Path | None) -> tuple[BiLM, int, dict]:
    """A trained biLM (encoder directory, best/ or checkpoint) → (model, max chars, tokenizer settings)."""
    kind = directory_kind(src)
    if kind == ENCODER_KIND:
        enc = Encoder.from_pretrained(src)
        return enc.model, enc.max_chars, enc.config.get("tokenizer", {})
    if kind not in ("bilm", "checkpoint"):
        raise PipelineError(
            f"{src}: not an encoder directory, a saved biLM (pretrain best/) or a checkpoint "
            f"(a task model keeps its encoder in {src / 'encoder'})"
        )
    model, train_cfg = load_bilm(src)
    # its tokenizer and casing decide what the ELMo files may say
    meta = training_data(src, train_cfg, prepared, hint="pass --prepared DIR, or export its encoder directory").meta
    tokenizer = {"type": meta["tokenizer"], "lowercase": meta["lowercase"]}
    return model, int(train_cfg.get("max_chars", meta["max_chars"])), tokenizer


def _export_notes(src: Path, cfg: ModelConfig, max_chars: int, tokenizer: dict) -> list[str]:
    """What users of the written files must know (the format holds these, AllenNLP does not all)."""
    notes = []
    if tokenizer.get("lowercase"):
        notes.append(f"{src} was trained on lower-cased text: lower-case the input before using the ELMo files")
    if max_chars != 50:
        notes.append(
            f"max_characters_per_token is {max_chars}: bilm-tf reads it, AllenNLP always uses 50 "
            f"(its vectors for tokens longer than {min(max_chars, 50) - 2} bytes will differ)"
        )
    if not cfg.skip_connections:
        notes.append("no skip connections: bilm-tf reads such files, AllenNLP's Elmo refuses them")
    return notes


def export_elmo(src: str | Path, out_dir: str | Path, prepared: str | Path | None = None, log=print) -> Path:
    """A biLM trained here → ``out_dir/options.json`` + ``out_dir/weights.hdf5`` (bilm-tf layout).

    Refused, with one line, for what the format cannot hold: a GRU/TCN body, SentencePiece pieces
    (the format has no tokenizer). What the files hold but some readers do not (lower-cased text,
    a max_chars other than 50, no skip connections) is written with a note. ``out_dir`` is replaced
    only if empty or an earlier export (marked in its options.json)."""
    src = Path(src)
    check_replaceable(out_dir, "elmo-weights", (OPTIONS_FILE, WEIGHTS_HDF5))
    with output_lock(out_dir):
        model, max_chars, tokenizer = _load_for_export(src, Path(prepared) if prepared else None)
        cfg = model.cfg
        if cfg.body != "lstm":
            raise PipelineError(f"{src}: a {cfg.body} body cannot be written in the ELMo format (it holds LSTMs only)")
        if tokenizer.get("type") == "sentencepiece":
            raise PipelineError(
                f"{src}: trained on SentencePiece pieces; the ELMo format has no tokenizer, "
                f"so its users would feed words it never saw: not exported"
            )
        for note in _export_notes(src, cfg, max_chars, tokenizer):
            log(f"note: {note}")
        arrays = arrays_from_state(model.state_dict(), cfg)
        with atomic_path(out_dir, kind="elmo-weights", own=(OPTIONS_FILE, WEIGHTS_HDF5)) as tmp:
            tmp.mkdir()
            (tmp / OPTIONS_FILE).write_text(json.dumps(options_of(cfg, max_chars), indent=2) + "\n", encoding="utf-8")
            write_weight_file(tmp / WEIGHTS_HDF5, arrays)
        return Path(out_dir)
