"""Reading and checking request bodies: every mistake is a :class:`RequestError` with an HTTP
status and one line naming the field (``texts[3]``) and what is wrong with it.

A text is a string (split by the model's tokenizer) or a list of tokens; a pair model takes
``pairs``, each two such texts. Bounds (``ServeConfig``): texts per request, characters and
tokens per text; the body's size is bounded before it is read (:func:`read_body`)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

from pipeline.config import ServeConfig, did_you_mean

ALLOWED_CONTROLS = "\t\n\r"  # whitespace in a text; other control characters are refused


class RequestError(Exception):
    """A request the service refuses: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_body(body: bytes) -> dict:
    """The request body as a JSON object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"the body is not UTF-8: byte {body[e.start]:#04x} at offset {e.start}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(400, f"the body is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise RequestError(400, "the body is not JSON this service reads: nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"the body must be a JSON object, got {json_type(data)}")
    return data


def check_fields(data: dict, known: dict[str, str], required: tuple[str, ...]) -> None:
    """Unknown fields (with the closest known one) and missing required ones are errors."""
    for key in data:
        if key not in known:
            hint = did_you_mean(key, list(known)) or f" (fields: {', '.join(known)})"
            raise RequestError(422, f"unknown field {key!r}{hint}")
    for key in required:
        if key not in data:
            raise RequestError(422, f"missing field {key!r}: {known[key]}")


def check_text(text: str, where: str, cfg: ServeConfig) -> None:
    if len(text) > cfg.max_chars:
        raise RequestError(422, f"{where}: {len(text):,} characters, over the bound of {cfg.max_chars:,} (--max-chars)")
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc" and ch not in ALLOWED_CONTROLS:
            raise RequestError(422, f"{where}: control character U+{ord(ch):04X} at position {i}")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise RequestError(422, f"{where}: a lone surrogate (U+{ord(ch):04X}) at position {i}: not Unicode text")


def tokens_of(value: Any, where: str, tokenize: Callable[[str], list[str]], cfg: ServeConfig) -> list[str]:
    """One text (a string, or a list of tokens) as the model's tokens."""
    if isinstance(value, str):
        check_text(value, where, cfg)
        tokens = tokenize(value)
    elif isinstance(value, list):
        if len(value) > cfg.max_tokens:
            raise RequestError(
                422, f"{where}: {len(value):,} tokens, over the bound of {cfg.max_tokens:,} (--max-tokens)"
            )
        for i, t in enumerate(value):
            if not isinstance(t, str) or not t.strip() or any(ch.isspace() for ch in t):
                raise RequestError(422, f"{where}[{i}]: a token must be a non-empty string without spaces")
            check_text(t, f"{where}[{i}]", cfg)
        tokens = list(value)
    else:
        raise RequestError(422, f"{where}: expected a string or a list of tokens, got {json_type(value)}")
    if not tokens:
        raise RequestError(422, f"{where}: empty (no tokens)")
    if len(tokens) > cfg.max_tokens:
        raise RequestError(422, f"{where}: {len(tokens):,} tokens, over the bound of {cfg.max_tokens:,} (--max-tokens)")
    return tokens


def examples_of(data: dict, key: str, tokenize, cfg: ServeConfig, pairs: bool = False) -> list:
    """``data[key]``: a list of texts (or of pairs of texts) → the model's examples."""
    items = data[key]
    if not isinstance(items, list):
        raise RequestError(422, f"{key}: expected an array, got {json_type(items)}")
    if not items:
        raise RequestError(422, f"{key}: empty; give at least one")
    if len(items) > cfg.max_texts:
        raise RequestError(422, f"{key}: {len(items):,} items, over the bound of {cfg.max_texts:,} (--max-texts)")
    if not pairs:
        return [tokens_of(v, f"{key}[{i}]", tokenize, cfg) for i, v in enumerate(items)]
    out = []
    for i, v in enumerate(items):
        if not isinstance(v, list) or len(v) != 2:
            raise RequestError(422, f"{key}[{i}]: expected a pair [text, text], got {json_type(v)}")
        out.append(tuple(tokens_of(side, f"{key}[{i}][{j}]", tokenize, cfg) for j, side in enumerate(v)))
    return out
