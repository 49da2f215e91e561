"""Test helpers: run the `elmo` CLI and DVC in a temporary copy of the repository; small data."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"  # `python` in dvc.yaml = this interpreter
    e["DVC_NO_ANALYTICS"] = "1"
    return e


def run(args: list[str], cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def elmo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd)


def cli(*args, cwd, stdin=subprocess.DEVNULL, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``elmo ARGS`` (any values, as strings) in ``cwd``; no standard input unless ``stdin``/``input`` given."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        stdin=stdin,
        timeout=timeout,
        **kw,
    )


def copy_repo(dest: Path) -> Path:
    """Copy what `dvc repro` needs into ``dest`` and make it a DVC project (no git)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, dest / name)
    for name in ("stages", "pipeline", "configs", "data/raw", "data/samples"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=dest, check=True)
    return dest


def tiny_repo(dest: Path, **sections) -> Path:
    """A copy of the repository with the tiny preset on a small generated corpus; ``sections``
    (e.g. ``pretrain={...}``) are written into its params.yaml."""
    import yaml

    repo = copy_repo(dest)
    (repo / "data" / "raw" / "corpus.txt").write_text(make_corpus(200))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["presets"] = ["tiny"]
    params["prepare"] = dict(corpus="data/raw/corpus.txt", valid_fraction=0.1, test_fraction=0.1, min_count=1)
    params.update(sections)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return repo


# --- small data ---------------------------------------------------------------------------------

SENTS = [["The", "fire", "was", "burning", "."], ["Zyzzyva", "unseenword", "!"], ["a"]]


def kv_from(words_vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=len(next(iter(words_vectors.values()))))
    kv.add_vectors(list(words_vectors), np.array(list(words_vectors.values()), dtype=np.float32))
    return kv


# dims: royal, male, female, child
TOY = {
    "man": [0, 1, 0, 0],
    "woman": [0, 0, 1, 0],
    "king": [1, 1, 0, 0],
    "queen": [1, 0, 1, 0],
    "boy": [0, 1, 0, 1],
    "girl": [0, 0, 1, 1],
}


WORDS = "the cat dog sat on a mat and ran to big red house tree . , is was".split()


def make_corpus(n=200, seed=0):
    """``n`` random sentences over a 19-word vocabulary, one per line."""
    rng = np.random.default_rng(seed)
    return "".join(" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) + "\n" for _ in range(n))


def finetune_cfg(**keys):
    """A checked FinetuneConfig from keys by their own names (``train=..., lr=...``: each goes to
    its section) or dotted (``**{"training.lr": ...}``), over the dataclass defaults."""
    from pipeline.config import FinetuneConfig, check_section, nest_flat_finetune, with_values

    values = check_section(FinetuneConfig, nest_flat_finetune(keys), "test")
    return with_values(FinetuneConfig(), values)


class ServeProcess:
    """``elmo serve ARGS --port 0`` until stopped; ``port`` read from its first line."""

    def __init__(self, *args, cwd):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "serve", *map(str, args), "--port", "0"],
            cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        line = self.proc.stderr.readline()
        while line and not line.startswith("serving "):
            self.lines.append(line)
            line = self.proc.stderr.readline()
        assert line, "".join(self.lines) + self.proc.stderr.read()
        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, (json.loads(raw) if r.getheader("content-type", "").startswith("application/json") else raw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
