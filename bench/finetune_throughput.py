"""Benchmark: finetuning throughput (training sentences/s) with word vectors only, a frozen biLM and
a finetuned biLM, on the same CoNLL-2003 sentences.

    .venv/bin/python bench/finetune_throughput.py --encoder runs/wikitext2-cpu/encoder-lm \\
        --word2vec runs/wikitext2-cpu/word2vec/vectors.bin --sentences 1000

Each setting is trained twice with the CLI defaults otherwise, for 1 and for 3 epochs, on the
first ``--sentences`` training sentences of ``../shared/data/conll2003`` (dev: the first 300 of
valid, so evaluation stays small), timing each whole call after one untimed run (so the vectors file
is not read cold by the first timed one): the 1-epoch run holds what is done once
(loading the encoder and vectors, building the word table, a frozen biLM's layers for every
sentence, which later epochs reuse); the steady rate is the 2 epochs after it, ``2 · sentences / (t3 − t1)``
(each epoch includes scoring the 300 dev sentences and saving
an improved model). An adapted biLM finetunes at the frozen or finetuned
rate of its shape (adaptation itself runs at pretraining speed: bench/pretrain_throughput.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import load_finetune_config  # noqa: E402
from pipeline.train.finetune import finetune  # noqa: E402

CONLL = REPO.parent / "shared" / "data" / "conll2003"
SETTINGS = {
    "word vectors only": {"inputs.use": "word2vec"},
    "frozen biLM (+ word vectors)": {"inputs.use": "both"},
    "finetuned biLM (+ word vectors)": {"inputs.use": "both", "training.finetune_encoder": True},
}


def first_sentences(src: Path, n: int, dest: Path) -> Path:
    blocks = [b for b in src.read_text().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
    dest.write_text("\n\n".join(blocks[:n]) + "\n")
    return dest


def seconds(overrides: dict, epochs: int, out: Path) -> float:
    """Wall time of a whole `finetune` call (loading the inputs included)."""
    cfg = load_finetune_config(None, {**overrides, "training.epochs": epochs, "training.patience": epochs})
    t = time.perf_counter()
    finetune(cfg, out, progress=False, log=lambda m: None)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--word2vec", required=True)
    ap.add_argument("--sentences", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = {
            "task": "ner",
            "data.train": str(first_sentences(CONLL / "train.txt", args.sentences, tmp / "train.txt")),
            "data.dev": str(first_sentences(CONLL / "valid.txt", 300, tmp / "dev.txt")),
            "inputs.encoder": args.encoder,
            "inputs.word2vec": args.word2vec,
        }
        print(f"CoNLL-2003: {args.sentences} training sentences, 300 dev; encoder {args.encoder}")
        print(f"{'setting':<34} {'1-epoch run, s':>15} {'3-epoch run, s':>15} {'later epochs sent/s':>20}")
        seconds({**base, **SETTINGS["word vectors only"]}, 1, tmp / "m0")  # untimed: the vectors file read cold
        for name, over in SETTINGS.items():
            t1 = seconds({**base, **over}, 1, tmp / "m1")
            t3 = seconds({**base, **over}, 3, tmp / "m3")
            steady = f"{2 * args.sentences / (t3 - t1):,.1f}" if t3 > t1 else "n/a (t3 <= t1: noise)"
            print(f"{name:<34} {t1:>15.2f} {t3:>15.2f} {steady:>20}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
