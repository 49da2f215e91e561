"""Word2Vec skip-gram vectors (gensim) on the prepared corpus, aligned to the vocabulary, evaluated.

Training reads ``data/prepared/train.txt`` through gensim's ``corpus_file`` mode: the file is
streamed by the worker threads, so memory grows with the vocabulary, not the corpus.

**Vectors for words the model lacks** (:class:`VectorLookup`, used for the aligned matrix and by
the downstream models): the exact token, else its lower-cased form, else a fixed random vector
(normal, with the trained vectors' standard deviation, seeded by the token's bytes so the same
word always gets the same vector) or zeros (``oov_vector: zero``). ``<PAD>`` is always zero.

**Intrinsic evaluation** follows gensim's ``evaluate_word_analogies`` / ``evaluate_word_pairs``
(3CosAdd over the ``restrict_vocab`` most frequent words, case-insensitive, questions with an
out-of-vocabulary word skipped and counted) but parses the files itself so that malformed lines
are counted rather than only logged, and runs the analogy search as batched matrix products.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import Word2VecConfig
from pipeline.data.lines import read_lines
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, check_replaceable

OUT_KV = "vectors.kv"
OUT_MATRIX = "embeddings.npy"
OUT_ALIGN = "embeddings.json"
# every name a word2vec directory may hold (gensim writes large arrays beside the .kv file)
WORD2VEC_FILES = (
    OUT_KV,
    f"{OUT_KV}.vectors.npy",
    OUT_MATRIX,
    OUT_ALIGN,
    "vectors.bin",
    "vectors.txt",
    "neighbours.txt",
)


def gensim_datapath(name: str) -> Path:
    from gensim.test.utils import datapath

    return Path(datapath(name))


def stable_hash(text: str) -> int:
    """gensim's ``hashfxn`` for initial vectors: Python's ``hash`` is salted per process."""
    return zlib.crc32(text.encode("utf-8"))


# --- training --------------------------------------------------------------------------------


class _ProgressLog(logging.Handler):
    """Forwards gensim's periodic 'EPOCH n - PROGRESS: ... words/s' lines to stderr."""

    def emit(self, record):
        msg = record.getMessage()
        if "PROGRESS" in msg or "EPOCH" in msg and "training on" in msg:
            import sys

            print(f"word2vec: {msg}", file=sys.stderr, flush=True)


def train_word2vec(corpus_file: str | Path, cfg: Word2VecConfig, progress: bool = True):
    """Train skip-gram with negative sampling on a tokenized text file; return (model, stats)."""
    from gensim.models import Word2Vec

    corpus_file = Path(corpus_file)
    if not corpus_file.is_file():
        raise PipelineError(f"{corpus_file}: corpus file not found (run the prepare stage)")
    if corpus_file.stat().st_size == 0 or not corpus_file.read_bytes()[:4096].strip():
        raise PipelineError(f"{corpus_file}: corpus is empty")

    logger = logging.getLogger("gensim.models.word2vec")
    handler = _ProgressLog()
    old_level = logger.level
    if progress:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        model = Word2Vec(
            vector_size=cfg.vector_size,
            window=cfg.window,
            min_count=cfg.min_count,
            sample=cfg.sample,
            seed=cfg.seed,
            workers=cfg.workers,
            alpha=cfg.alpha,
            min_alpha=cfg.min_alpha,
            sg=1,
            hs=0,
            negative=cfg.negative,
            epochs=cfg.epochs,
            hashfxn=stable_hash,
        )
        model.build_vocab(corpus_file=str(corpus_file))
        if len(model.wv) == 0:
            raise PipelineError(
                f"{corpus_file}: no word occurs at least word2vec.min_count={cfg.min_count} times; "
                f"lower min_count or give a larger corpus"
            )
        t0 = time.perf_counter()
        model.train(
            corpus_file=str(corpus_file),
            total_examples=model.corpus_count,
            total_words=model.corpus_total_words,
            epochs=cfg.epochs,
            report_delay=5.0,
        )
        seconds = time.perf_counter() - t0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    words = model.corpus_total_words * cfg.epochs
    stats = {
        "vocab_size": len(model.wv),
        "corpus_words": int(model.corpus_total_words),
        "train_seconds": round(seconds, 3),
        "train_words_per_sec": round(words / max(seconds, 1e-9), 1),
    }
    return model, stats


# --- vectors for any token -------------------------------------------------------------------


class VectorLookup:
    """token → vector with the documented fallback: exact, lower-cased, then random or zero."""

    def __init__(self, kv, oov_vector: str = "random", seed: int = 0):
        self.kv = kv
        self.oov_vector = oov_vector
        self.seed = seed
        self.dim = kv.vector_size
        self.scale = float(np.std(kv.vectors)) if len(kv) else 1.0

    def _random(self, token: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, zlib.crc32(token.encode("utf-8", "surrogatepass"))])
        return rng.normal(0.0, self.scale, self.dim).astype(np.float32)

    def vector(self, token: str) -> tuple[np.ndarray, str]:
        """(vector, how) with how in exact | lower | random | zero."""
        if token in self.kv.key_to_index:
            return self.kv[token].astype(np.float32), "exact"
        low = token.lower()
        if low in self.kv.key_to_index:
            return self.kv[low].astype(np.float32), "lower"
        if self.oov_vector == "zero":
            return np.zeros(self.dim, np.float32), "zero"
        return self._random(token), "random"

    def matrix(self, tokens: list[str], zero_tokens: tuple[str, ...] = ("<PAD>",)) -> tuple[np.ndarray, dict]:
        """``(len(tokens), dim)`` float32 matrix and counts of how each row was filled."""
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        how: Counter[str] = Counter()
        for i, tok in enumerate(tokens):
            if tok in zero_tokens:
                how["zero"] += 1
                continue
            out[i], h = self.vector(tok)
            how[h] += 1
        return out, {k: how.get(k, 0) for k in ("exact", "lower", "random", "zero")}


def load_word2vec_lookup(path: str | Path, seed: int = 0) -> VectorLookup:
    """A vector file (:func:`load_vectors`) as a :class:`VectorLookup` with random unknown-word vectors."""
    return VectorLookup(load_vectors(path), "random", seed)


# --- evaluation ------------------------------------------------------------------------------


@dataclass
class AnalogyResult:
    sections: dict[str, list[int]] = field(default_factory=dict)  # name → [correct, evaluated]
    questions: int = 0  # well-formed questions in the file
    oov: int = 0  # skipped: a word outside the restricted vocabulary
    malformed: int = 0  # skipped: not four words

    def _acc(self, names) -> float | None:
        c = sum(self.sections[n][0] for n in names)
        t = sum(self.sections[n][1] for n in names)
        return round(c / t, 6) if t else None  # None: no question of that kind was in vocabulary

    def summary(self) -> dict:
        semantic = [n for n in self.sections if not n.startswith("gram")]
        syntactic = [n for n in self.sections if n.startswith("gram")]
        return {
            "accuracy": self._acc(self.sections),
            "semantic": self._acc(semantic),
            "syntactic": self._acc(syntactic),
            "evaluated": sum(v[1] for v in self.sections.values()),
            "oov_rate": round(self.oov / self.questions, 6) if self.questions else 0.0,
            "malformed_lines": self.malformed,
        }


def _read_lines(path: Path) -> list[str]:
    return read_lines(path, what="evaluation file")


def _case_insensitive_vocab(kv, restrict_vocab: int) -> dict[str, int]:
    keys = kv.index_to_key[:restrict_vocab]
    # reversed: the most frequent casing of a word wins, as in gensim
    return {k.upper(): kv.key_to_index[k] for k in reversed(keys)}


def evaluate_analogies(kv, path: str | Path, restrict_vocab: int = 300_000, batch: int = 512) -> AnalogyResult:
    """Accuracy on a questions-words style file (``: section`` headers, ``a b c d`` lines)."""
    path = Path(path)
    ok = _case_insensitive_vocab(kv, restrict_vocab)
    res = AnalogyResult()
    questions: list[tuple[str, tuple[str, str, str, str]]] = []
    section = None
    for lineno, line in enumerate(_read_lines(path), start=1):
        if line.startswith(": "):
            section = line[2:].strip()
            res.sections.setdefault(section, [0, 0])
            continue
        if not line.strip():
            continue
        if section is None:
            raise PipelineError(f"{path}:{lineno}: question before any ': section' header line")
        words = line.upper().split()
        if len(words) != 4:
            res.malformed += 1
            continue
        res.questions += 1
        if any(w not in ok for w in words):
            res.oov += 1
            continue
        questions.append((section, (words[0], words[1], words[2], words[3])))

    R = min(restrict_vocab, len(kv))
    unit = kv.get_normed_vectors()[:R]  # (R, D)
    keys_upper = [k.upper() for k in kv.index_to_key[:R]]
    for start in range(0, len(questions), batch):
        chunk = questions[start : start + batch]
        idx = np.array([[ok[w] for w in q[:3]] for _, q in chunk])  # (Q, 3): a, b, c
        query = unit[idx[:, 1]] + unit[idx[:, 2]] - unit[idx[:, 0]]  # mean of ±unit vectors, up to scale
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        scores = query @ unit.T  # (Q, R)
        np.put_along_axis(scores, idx, -np.inf, axis=1)  # inputs themselves are never answers
        top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        for (name, (a, b, c, expected)), cand in zip(chunk, top):
            predicted = None
            for j in cand:
                predicted = keys_upper[j]
                if predicted not in (a, b, c):
                    break
            res.sections[name][1] += 1
            res.sections[name][0] += int(predicted == expected)
    return res


def evaluate_pairs(kv, path: str | Path, restrict_vocab: int = 300_000) -> dict:
    """Spearman (and Pearson) correlation with human similarity scores (``a<TAB>b<TAB>score``)."""
    from scipy import stats

    path = Path(path)
    ok = _case_insensitive_vocab(kv, restrict_vocab)
    gold, model = [], []
    oov = malformed = 0
    unit = kv.get_normed_vectors()
    for line in _read_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            a, b, text = parts
            score = float(text)
        except ValueError:
            malformed += 1
            continue
        a, b = a.upper(), b.upper()
        if a not in ok or b not in ok:
            oov += 1
            continue
        gold.append(score)
        model.append(float(unit[ok[a]] @ unit[ok[b]]))
    n = len(gold) + oov
    out = {
        "spearman": None,
        "pearson": None,
        "pairs": len(gold),
        "oov_rate": round(oov / n, 6) if n else 0.0,
        "malformed_lines": malformed,
    }
    if len(gold) >= 2:
        out["spearman"] = round(float(stats.spearmanr(gold, model).statistic), 6)
        out["pearson"] = round(float(stats.pearsonr(gold, model).statistic), 6)
    return out


def evaluation_report(kv, restrict_vocab: int = 300_000, analogies=None, wordsim=None, simlex=None) -> dict:
    """Analogy summary and the two word-pair similarity results (gensim's shipped files by default):
    ``{"analogy": {...}, "wordsim353": {...}, "simlex999": {...}}``."""
    analogies = analogies or gensim_datapath("questions-words.txt")
    out = {"analogy": evaluate_analogies(kv, analogies, restrict_vocab).summary()}
    for name, path in (
        ("wordsim353", wordsim or gensim_datapath("wordsim353.tsv")),
        ("simlex999", simlex or gensim_datapath("simlex999.txt")),
    ):
        out[name] = evaluate_pairs(kv, path, restrict_vocab)
    return out


def evaluate_vectors(kv, restrict_vocab: int = 300_000, analogies=None, wordsim=None, simlex=None) -> dict:
    """The standard intrinsic metrics as one flat dict (the word2vec stage's metrics)."""
    r = evaluation_report(kv, restrict_vocab, analogies, wordsim, simlex)
    a = r["analogy"]
    out = {
        "analogy_accuracy": a["accuracy"],
        "analogy_semantic": a["semantic"],
        "analogy_syntactic": a["syntactic"],
        "analogy_oov_rate": a["oov_rate"],
    }
    for name in ("wordsim353", "simlex999"):
        out[f"{name}_spearman"] = r[name]["spearman"]
        out[f"{name}_oov_rate"] = r[name]["oov_rate"]
    return out


def neighbours_report(kv, probes: list[str], n: int = 10) -> str:
    lines = []
    for word in probes:
        if word not in kv.key_to_index:
            lines.append(f"{word}: (not in vocabulary)")
            continue
        near = ", ".join(f"{w} ({s:.3f})" for w, s in kv.most_similar(word, topn=n))
        lines.append(f"{word}: {near}")
    return "\n".join(lines) + "\n"


def default_probes(kv, k: int = 8) -> list[str]:
    """The ``k`` most frequent alphabetic words that are not English stop words (scikit-learn's list)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in kv.index_to_key if w.isalpha() and len(w) > 2 and w.lower() not in ENGLISH_STOP_WORDS][:k]


# --- loading vector files --------------------------------------------------------------------


def load_vectors(path: str | Path):
    """Load a word2vec-format file (text or binary, detected) or a gensim ``.kv`` file."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if path.is_dir():
        hint = " (the word2vec stage writes vectors.bin inside it)" if (path / "vectors.bin").is_file() else ""
        raise PipelineError(f"{path}: is a directory, not a vector file{hint}")
    if not path.is_file():
        raise PipelineError(f"{path}: vector file not found")
    if path.suffix == ".kv":
        try:
            return KeyedVectors.load(str(path))
        except Exception as e:  # unpickling errors come in many types
            raise PipelineError(f"{path}: cannot load gensim KeyedVectors: {e}") from None
    with open(path, "rb") as f:
        header = f.readline()
    try:
        count, dim = (int(x) for x in header.split())
        if count < 1 or dim < 1:
            raise ValueError
    except ValueError:
        raise PipelineError(
            f"{path}:1: not word2vec format: the first line must be '<word count> <dimension>', got {header[:60]!r}"
        ) from None
    errors = []
    for binary in (False, True):
        try:
            return KeyedVectors.load_word2vec_format(str(path), binary=binary)
        except (ValueError, UnicodeDecodeError, EOFError, IndexError) as e:
            errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
    raise PipelineError(f"{path}: not a word2vec text or binary file ({errors[0]})")


# --- the stage -------------------------------------------------------------------------------


def run_word2vec(cfg: Word2VecConfig, prepared_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict:
    """The word2vec stage: train, save, align to the vocabulary, evaluate. Returns the metrics."""
    from pipeline.data.prepared import PreparedData
    from pipeline.data.vocab import SPECIALS

    check_replaceable(out_dir, "word2vec", WORD2VEC_FILES)  # a bad output path fails before any work
    data = PreparedData(prepared_dir)
    model, train_stats = train_word2vec(data.text_file("train"), cfg, progress)
    kv = model.wv
    lookup = VectorLookup(kv, cfg.oov_vector, seed=cfg.seed)
    matrix, how = lookup.matrix(data.vocab.tokens)
    metrics = {**train_stats, **evaluate_vectors(kv, cfg.restrict_vocab)}
    # share of the vocabulary's words (specials excluded: word2vec never sees them) with a trained vector
    n_words = len(data.vocab) - len(SPECIALS)
    metrics["vocab_coverage"] = round((how["exact"] + how["lower"]) / max(n_words, 1), 6)
    probes = cfg.probe_words or default_probes(kv)
    report = neighbours_report(kv, probes, cfg.n_neighbours)

    with atomic_path(out_dir, kind="word2vec", own=WORD2VEC_FILES) as tmp:
        tmp.mkdir()
        kv.lifecycle_events = None  # gensim would pickle a dated event log: same inputs, different bytes
        kv.save(str(tmp / OUT_KV))
        name = "vectors.bin" if cfg.format == "binary" else "vectors.txt"
        kv.save_word2vec_format(str(tmp / name), binary=cfg.format == "binary")
        np.save(tmp / OUT_MATRIX, matrix)
        align = {
            "vocab_file": str(Path(prepared_dir) / "vocab.txt"),
            "shape": list(matrix.shape),
            "rule": "exact token, else lower-cased token, else "
            + ("a fixed random vector (seeded by the token)" if cfg.oov_vector == "random" else "zeros")
            + "; <PAD> is zero",
            "rows": how,
        }
        (tmp / OUT_ALIGN).write_text(json.dumps(align, indent=2) + "\n", encoding="utf-8")
        (tmp / "neighbours.txt").write_text(report, encoding="utf-8")
    return {"metrics": metrics, "neighbours": report}
