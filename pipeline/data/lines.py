"""The one way text files are read: every reader of the pipeline (corpora, labelled files, CoNLL,
vocabularies, evaluation files, and the input of embed / predict / lm-score) takes its lines here.

- Lines end only at ``\\n`` (a ``\\r`` before it is dropped). ``str.splitlines`` also breaks at
  U+0085, U+2028, U+2029, form feed, vertical tab and ``\\x1c``–``\\x1e``; here those characters
  (and a lone ``\\r``) stay inside the line as a space, so tokenizers see them as whitespace and a
  sentence or CoNLL line is never cut in two.
- A UTF-8 byte-order mark at the start of the file is removed and counted (``bom``).
- Invalid UTF-8, NUL and the other control characters (C0 except tab, DEL, C1 except U+0085) are
  errors naming file and line (``encoding_errors: error``) or are replaced by U+FFFD and the line
  counted (``encoding_errors: replace``).
- Labelled files (``soft_controls``) are read as they are: a control character other than NUL in
  valid UTF-8 (e.g. U+0097, a cp1252 dash decoded as Latin-1 upstream) becomes a space and the line
  is counted (``controls_as_space``); NUL and invalid UTF-8 keep the policy above.
- A file whose first 64 KiB are mostly NUL bytes or undecodable is refused as binary.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.io import check_not_special, is_stdio, standard_stream

BOM = b"\xef\xbb\xbf"
# separators that str.splitlines() breaks at but a line of text may hold: read as a space
SEPARATORS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_AS_SPACE = str.maketrans({c: " " for c in SEPARATORS})
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")
_SOFT_CONTROL = re.compile("[\x01-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")  # _CONTROL less NUL
_SPECIAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # either of the above: most lines have none
SNIFF_BYTES = 1 << 16


@dataclass
class ReadStats:
    lines: int = 0
    replaced_utf8: int = 0  # lines with invalid UTF-8 or control characters, replaced by U+FFFD
    bom: int = 0  # files that started with a byte-order mark (removed)
    controls_as_space: int = 0  # lines whose control characters (not NUL) were read as spaces (soft_controls)
    tabbed: int = 0  # lines of a one-sentence-per-line input that hold a tab (input_lines only)
    sources: list[str] = field(default_factory=list)


@dataclass
class Line:
    text: str
    source: str  # file path or dataset spec
    lineno: int  # 1-based line (or row) number within ``source``


# how to read past bad bytes: a command's flag, or the key of a config section (prepare, finetune's data)
REPLACE_HINT = "--encoding-errors replace (prepare: encoding_errors; finetune: data.encoding_errors)"


def open_binary(path: Path, what: str = "file", stdin_ok: bool = False):
    check_not_special(path, what, stdin_ok)  # a FIFO or a device would block or never end
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")  # in no text encoding's text


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _refuse_binary(path: Path, head: bytes, errors: str) -> None:
    """A file whose first lines mostly hold NULs, or bytes that are neither UTF-8 nor text in an
    8-bit encoding, is not text. Lines of 8-bit text (Latin-1, cp1252) are an error that says so,
    unless ``errors`` is "replace" (they are then read with U+FFFD, line by line)."""
    lines = [x for x in head.split(b"\n")[: -1 if len(head) == SNIFF_BYTES else None] if x] or [head]
    invalid = binary = 0
    for raw in lines:
        utf8 = _valid_utf8(raw)
        invalid += not utf8
        binary += b"\x00" in raw or (not utf8 and _BINARY_BYTES.search(raw) is not None)
    if head and binary * 2 > len(lines):
        raise PipelineError(
            f"{path}: looks like a binary file ({binary} of the first {len(lines)} lines hold NUL "
            f"or other non-text bytes); give a UTF-8 text file"
        )
    if head and invalid * 2 > len(lines) and errors == "error":
        raise PipelineError(
            f"{path}: not UTF-8: {invalid} of the first {len(lines)} lines look like text in another "
            f"encoding (Latin-1 or cp1252?); convert it (e.g. iconv -f cp1252 -t utf-8), or give "
            f"{REPLACE_HINT} to read such bytes as U+FFFD"
        )


def decode_line(raw: bytes, where: str, errors: str, soft_controls: bool = False) -> tuple[str, bool, bool]:
    """One line's bytes (no line break) → (text, replaced?, controls read as spaces?). Bad bytes or
    control characters are an error naming ``where`` (file:line) or, with ``errors="replace"``,
    U+FFFD; with ``soft_controls`` control characters other than NUL become spaces."""
    try:
        text = raw.decode("utf-8")
        bad = False
    except UnicodeDecodeError as e:
        if errors == "error":
            raise PipelineError(
                f"{where}: invalid UTF-8 at byte {e.start}; {REPLACE_HINT} reads such bytes as U+FFFD"
            ) from None
        text, bad = raw.decode("utf-8", errors="replace"), True
    softened = bool(soft_controls and _SOFT_CONTROL.search(text))
    if softened:
        text = _SOFT_CONTROL.sub(" ", text)
    text, replaced = clean_text(text, where, errors)
    return text, bad or replaced, softened


def clean_text(text: str, where: str, errors: str) -> tuple[str, bool]:
    """Decoded text of one line → (text with separators as spaces, control characters replaced?);
    a control character is an error naming ``where`` unless ``errors="replace"``."""
    if not _SPECIAL.search(text):
        return text, False
    bad = False
    m = _CONTROL.search(text)
    if m:
        if errors == "error":
            raise PipelineError(
                f"{where}: control character U+{ord(m.group()):04X} at column {m.start() + 1}; "
                f"{REPLACE_HINT} reads it as U+FFFD"
            )
        text, bad = _CONTROL.sub("\ufffd", text), True
    return text.translate(_AS_SPACE), bad


def split_text_lines(text: str) -> list[str]:
    """A string that may hold several lines (a dataset row) → its lines, split at ``\n`` only."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def iter_lines(
    path: str | os.PathLike,
    errors: str = "error",
    stats: ReadStats | None = None,
    what: str = "file",
    soft_controls: bool = False,
    stdin: bool = False,
) -> Iterator[Line]:
    """The lines of a text file (plain or .gz), read as described in the module docstring;
    ``stdin``: the path ``-`` reads standard input (for commands that read their input once)."""
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    stats.sources.append(str(path))
    try:
        source = standard_stream("stdin") if stdin and is_stdio(path) else None
        with contextlib.nullcontext(source) if source else open_binary(path, what, stdin) as f:
            head = f.read(SNIFF_BYTES)
            _refuse_binary(path, head, errors)
            if head.startswith(BOM):
                head = head[len(BOM) :]
                stats.bom += 1
            yield from _lines(path, head, f, errors, stats, soft_controls)
    except FileNotFoundError:
        raise PipelineError(f"{path}: {what} not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise PipelineError(f"{path}: not a valid gzip file, or a damaged one ({e})") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a directory") from None
    except PermissionError:
        raise PipelineError(f"{path}: permission denied") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read {what}: {e.strerror or e}") from None


def _lines(path: Path, head: bytes, f, errors: str, stats: ReadStats, soft_controls: bool) -> Iterator[Line]:
    lineno = 0
    rest = b""
    for chunk in _chunks(head, f):
        *complete, rest = (rest + chunk).split(b"\n")
        for raw in complete:
            lineno += 1
            yield _line(path, raw, lineno, errors, stats, soft_controls)
    if rest:
        lineno += 1
        yield _line(path, rest, lineno, errors, stats, soft_controls)


def _chunks(head: bytes, f) -> Iterator[bytes]:
    yield head
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return
        yield chunk


def _line(path: Path, raw: bytes, lineno: int, errors: str, stats: ReadStats, soft_controls: bool) -> Line:
    text, replaced, softened = decode_line(
        raw[:-1] if raw.endswith(b"\r") else raw, f"{path}:{lineno}", errors, soft_controls
    )
    stats.lines += 1
    stats.replaced_utf8 += replaced
    stats.controls_as_space += softened
    return Line(text, str(path), lineno)


def read_lines(
    path: str | os.PathLike,
    errors: str = "error",
    stats: ReadStats | None = None,
    what: str = "file",
    soft_controls: bool = False,
) -> list[str]:
    """All lines of a (small) text file, read like :func:`iter_lines`."""
    return [line.text for line in iter_lines(path, errors, stats, what, soft_controls)]


def input_lines(
    path: str | os.PathLike, errors: str = "error", stats: ReadStats | None = None
) -> Iterator[tuple[int, str]]:
    """(0-based line number, text) of the one text file a command reads sentences from (embed,
    predict, lm-score)."""
    path = Path(path)
    if path.is_dir():
        raise PipelineError(f"{path}: is a directory; give one text file")
    for line in iter_lines(path, errors, stats, what="input file", stdin=True):
        if stats is not None and "\t" in line.text:
            stats.tabbed += 1
        yield line.lineno - 1, line.text


def tab_warning(path, stats: ReadStats, hint: str) -> str | None:
    """The one-line warning for a one-sentence-per-line input whose lines mostly hold a tab (a
    labelled TSV given to embed or predict, whose label column would be read as words)."""
    if stats.lines and stats.tabbed * 2 > stats.lines:
        return (
            f"warning: {path}: {stats.tabbed} of {stats.lines} lines hold a tab; each whole line was read as "
            f"one sentence, every column included ({hint})"
        )
    return None


def input_chunks(
    path: str | os.PathLike, chunk_lines: int, errors: str = "error", stats: ReadStats | None = None
) -> Iterator[list[tuple[int, str]]]:
    """:func:`input_lines` in lists of at most ``chunk_lines``: how embed and predict stream a file."""
    lines = input_lines(path, errors, stats)
    while chunk := list(itertools.islice(lines, chunk_lines)):
        yield chunk
