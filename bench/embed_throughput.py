"""Benchmark: `elmo embed` / Encoder.embed throughput on CPU, token cache on and off, peak memory.

    .venv/bin/python bench/embed_throughput.py                  # cpu and small presets, PTB sentences
    .venv/bin/python bench/embed_throughput.py --presets cpu --sentences 1000 --rss 10000,100000

For each preset (random weights: speed does not depend on training) on real PTB sentences
(`../shared/data/ptb/ptb.train.txt`), prints sentences/s and tokens/s of ``Encoder.embed`` with
the token cache off, with the LRU cache (cold at the start of the run), with the vocabulary
precomputed, then that with bf16 matmuls
(``Encoder.bf16``, ``elmo embed --bf16``; with single-sentence latency and the bf16 vectors' distance
from fp32); the same for a straightforward per-sentence loop (one sentence per forward, every
token encoded over all 50 characters) and the ratio. Then it runs ``elmo embed --layers top`` as a
subprocess on files of 10k and 100k sentences and prints each run's peak RSS (must stay flat).
Medians of 3 repeats for the timed runs.

``--elmo`` runs ELMo weight files through ``elmo import-elmo`` and then the same timings on the
first ``--elmo-sentences`` PTB valid sentences, so a sentences/s figure can be set beside another
tool's on the identical model: ``fixture`` (the
AllenNLP test model in ../shared/data), ``small`` / ``medium`` / ``original`` (random weights with
the released models' shapes, written by this bench in the bilm-tf layout), or ``OPTIONS.json:WEIGHTS.hdf5``:

    .venv/bin/python bench/embed_throughput.py --presets '' --rss '' --elmo small --elmo-sentences 2000
    .venv/bin/python bench/embed_throughput.py --presets '' --rss '' --elmo original --elmo-sentences 200

``--batch-tokens 1024,2048,4096,8192,16384`` adds, for each ``--elmo`` model, sentences/s at each
``batch_tokens`` (``elmo embed --batch-tokens``) in fp32 and bf16.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pretrain_throughput import preset_yaml  # noqa: E402  (bench/ is on the path: one spec syntax for both benches)

from pipeline.bilm.model import BiLM  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.cpu import median_seconds  # noqa: E402
from pipeline.data.chars import char_table  # noqa: E402
from pipeline.data.tokenizers import WhitespaceTokenizer  # noqa: E402
from pipeline.data.vocab import Vocab  # noqa: E402
from pipeline.encoder import ENCODER_FORMAT, Encoder  # noqa: E402

PTB = REPO.parent / "shared" / "data" / "ptb" / "ptb.train.txt"
PTB_VALID = PTB.with_name("ptb.valid.txt")  # the --elmo runs: the sentences of the AllenNLP comparison
FIXTURE = REPO.parent / "shared" / "data" / "allennlp-elmo-fixture"
ELMO_CNN = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
# the released ELMo models' shapes (allennlp.org/elmo): (projection P, cell H, highway layers)
RELEASED = {"small": (128, 1024, 1), "medium": (256, 2048, 1), "original": (512, 4096, 2)}

RSS_CODE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def build_encoder(preset: str, sentences: list[list[str]], tmp: Path) -> Encoder:
    (tmp / "p.yaml").write_text(preset_yaml(preset))  # a preset, optionally with overrides: cpu:model.body=gru
    cfg = load_params(tmp / "p.yaml").model
    from collections import Counter

    vocab = Vocab.build(Counter(t for s in sentences for t in s), len(sentences), min_count=1)
    torch.manual_seed(0)
    model = BiLM(cfg, len(vocab))
    config = {
        "format_version": ENCODER_FORMAT,
        "model": dataclasses.asdict(cfg),
        "vocab_size": len(vocab),
        "max_chars": 50,
        "tokenizer": {"type": "whitespace", "lowercase": False},
        "with_softmax": False,
    }
    return Encoder(model, config, vocab, WhitespaceTokenizer())


def per_sentence_baseline(enc: Encoder, sentences: list[list[str]]) -> None:
    """One sentence per forward; every position encoded over all 50 char ids (no de-duplication)."""
    model = enc.model
    for s in sentences:
        rows = ["<S>", *s, "</S>"]
        chars = torch.from_numpy(char_table(rows, 50).astype("int64"))
        with torch.no_grad():
            x = model.token_encoder(chars)[None]  # (1, T, P)
            model.contextualize(x, torch.ones(1, len(rows), dtype=torch.bool))


def bf16_report(enc: Encoder, sample: list[list[str]]) -> str:
    """Single-sentence latency (median over the sample, one sentence per call) in fp32 and bf16, with
    the token cache warm (every token seen before) and cold (emptied before each sentence), and how
    far bf16 vectors are from fp32 ones (max |difference| per layer, lowest cosine per token)."""
    latency, vectors = {}, {}
    for bf16 in (False, True):
        enc.bf16 = bf16
        vectors[bf16] = enc.embed(sample)  # also warms the cache
        for cache in ("warm", "cold"):
            times = []
            for s in sample[:100]:
                if cache == "cold":
                    enc._cache.clear()
                t = time.perf_counter()
                enc.embed([s])
                times.append(time.perf_counter() - t)
            latency[bf16, cache] = statistics.median(times) * 1e3
    enc.bf16 = False
    diffs, cosines = [], []
    for k in range(enc.n_layers):
        a = torch.from_numpy(np.concatenate([v[k] for v in vectors[False]]))
        b = torch.from_numpy(np.concatenate([v[k] for v in vectors[True]]))
        diffs.append(f"{float((a - b).abs().max()):.4f}")
        cosines.append(float(torch.nn.functional.cosine_similarity(a, b, dim=1).min()))
    ms = {k: f"{v:.2f}" for k, v in latency.items()}
    return (
        f"single-sentence latency, cache warm / cold: fp32 {ms[False, 'warm']} / {ms[False, 'cold']} ms, "
        f"bf16 {ms[True, 'warm']} / {ms[True, 'cold']} ms; bf16 vs fp32 vectors: max |diff| per layer "
        f"{' '.join(diffs)}, min cosine {min(cosines):.5f}"
    )


def elmo_files(name: str, tmp: Path) -> tuple[Path, Path]:
    """(options.json, weights.hdf5) for ``--elmo NAME``; released shapes get random weights."""
    if name == "fixture":
        return FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5"
    if name not in RELEASED:
        options, weights = name.split(":")
        return Path(options), Path(weights)
    from pipeline.config import ModelConfig
    from pipeline.elmo_format import arrays_from_state, options_of, write_weight_file

    P, H, n_highway = RELEASED[name]
    cfg = ModelConfig(
        filters=ELMO_CNN, n_highway=n_highway, projection_dim=P, cell_dim=H, cell_clip=3.0, proj_clip=3.0, dropout=0.0
    )
    torch.manual_seed(0)
    model = BiLM(cfg, 0)
    (tmp / f"{name}.json").write_text(json.dumps(options_of(cfg, 50)))
    write_weight_file(tmp / f"{name}.hdf5", arrays_from_state(model.state_dict(), cfg))
    return tmp / f"{name}.json", tmp / f"{name}.hdf5"


def batch_sweep(enc: Encoder, name: str, sample: list[list[str]], sizes: list[int], repeats: int) -> None:
    """Sentences/s of ``Encoder.embed`` for each ``batch_tokens`` in ``sizes``, fp32 and bf16, the
    token cache cold at the start of each timed run; the sizes alternate within each repeat."""
    rates: dict[tuple[bool, int], list[float]] = {}
    for bf16 in (False, True):
        enc.bf16 = bf16
        for _ in range(repeats):
            for size in sizes:
                enc._cache.clear()
                t = time.perf_counter()
                enc.embed(sample, batch_tokens=size)
                rates.setdefault((bf16, size), []).append(len(sample) / (time.perf_counter() - t))
    enc.bf16 = False
    for size in sizes:
        fp32, bf16 = (statistics.median(rates[b, size]) for b in (False, True))
        print(f"{name:<9} batch_tokens {size:>6}: {fp32:>8,.1f} sent/s fp32, {bf16:>8,.1f} bf16", flush=True)


def elmo_report(names: list[str], n_sentences: int, repeats: int, tmp: Path, sizes: list[int] | None = None) -> None:
    from pipeline.elmo_format import import_elmo

    lines = [line.split() for line in PTB_VALID.read_text().splitlines() if line.strip()]
    sample = lines[:n_sentences]
    n_tok = sum(len(s) for s in sample)
    print(f"ELMo weight files, imported: the first {n_sentences} PTB valid sentences ({n_tok:,} tokens)")
    for name in names:
        options, weights = elmo_files(name, tmp)
        enc = Encoder.from_pretrained(import_elmo(options, weights, tmp / f"enc-{name}"))
        params = enc.model.n_params()
        loop = median_seconds(lambda: per_sentence_baseline(enc, sample[:50]), 1) * len(sample) / 50
        for variant, bf16 in (("LRU cache (cold)", False), ("  + bf16", True)):
            enc.bf16 = bf16

            def cold():
                enc._cache.clear()
                enc.embed(sample)

            t = median_seconds(cold, repeats)
            print(
                f"{name:<9} {params / 1e6:6.1f}M params  {variant:<17} {len(sample) / t:>8,.1f} sent/s "
                f"{n_tok / t:>9,.0f} tokens/s  {loop / t:>5.2f}x the per-sentence loop",
                flush=True,
            )
        print(f"{name:<9} {bf16_report(enc, sample[:300])}", flush=True)
        if sizes:
            batch_sweep(enc, name, sample, sizes, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--presets",
        default="cpu,small",
        help="comma-separated presets, each optionally with overrides: cpu:model.body=gru",
    )
    ap.add_argument("--sentences", type=int, default=2000, help="sentences per timed run")
    ap.add_argument("--baseline-sentences", type=int, default=300)
    ap.add_argument("--rss", default="10000,100000", help="line counts for the peak-RSS runs ('' to skip)")
    ap.add_argument("--rss-preset", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--elmo",
        default="",
        help="ELMo weight files to import and time: fixture, small, medium, "
        "original, or OPTIONS.json:WEIGHTS.hdf5 (comma-separated)",
    )
    ap.add_argument("--elmo-sentences", type=int, default=200)
    ap.add_argument(
        "--batch-tokens",
        default="",
        help="with --elmo: also time these batch_tokens values, fp32 and bf16 (comma-separated, e.g. 1024,4096,16384)",
    )
    args = ap.parse_args()
    if not PTB.is_file():
        sys.exit(f"{PTB} not found")
    lines = [line.split() for line in PTB.read_text().splitlines() if line.strip()]
    sample = lines[: args.sentences]
    n_tok = sum(len(s) for s in sample)
    base_sample = lines[: args.baseline_sentences]
    base_tok = sum(len(s) for s in base_sample)
    print(
        f"PTB train sentences: {args.sentences} for the API runs ({n_tok:,} tokens), "
        f"{args.baseline_sentences} for the per-sentence loop; {torch.get_num_threads()} threads"
    )
    print(f"{'preset':<7} {'variant':<22} {'sent/s':>9} {'tokens/s':>10} {'vs loop':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.elmo:
            sizes = [int(x) for x in args.batch_tokens.split(",") if x]
            elmo_report(args.elmo.split(","), args.elmo_sentences, args.repeats, tmp, sizes)
        for preset in filter(None, args.presets.split(",")):
            enc = build_encoder(preset, lines, tmp)
            loop = median_seconds(lambda: per_sentence_baseline(enc, base_sample), 1)
            loop_rate = args.baseline_sentences / loop
            results = []
            size, enc.cache_size = enc.cache_size, 0
            results.append(("no cache", median_seconds(lambda: enc.embed(sample), args.repeats)))
            enc.cache_size = size

            def cold():
                enc._cache.clear()
                enc.embed(sample)

            results.append(("LRU cache (cold)", median_seconds(cold, args.repeats)))
            enc.precompute_vocab()
            results.append(("vocab precomputed", median_seconds(lambda: enc.embed(sample), args.repeats)))
            enc.bf16 = True
            results.append(("  + bf16", median_seconds(lambda: enc.embed(sample), args.repeats)))
            enc.bf16 = False
            print(f"{preset:<7} {'per-sentence loop':<22} {loop_rate:>9,.1f} {base_tok / loop:>10,.0f} {1.0:>7.2f}x")
            for name, t in results:
                rate = args.sentences / t
                print(f"{preset:<7} {name:<22} {rate:>9,.1f} {n_tok / t:>10,.0f} {rate / loop_rate:>7.2f}x", flush=True)
            print(f"{preset:<7} {bf16_report(enc, sample[:500])}", flush=True)

        if args.rss:
            enc = build_encoder(args.rss_preset, lines, tmp)
            enc.save_pretrained(tmp / "enc")
            for n in (int(x) for x in args.rss.split(",")):
                src = tmp / f"in{n}.txt"
                with open(src, "w") as f:
                    for s in itertools.islice(itertools.cycle(lines), n):
                        f.write(" ".join(s) + "\n")
                t = time.perf_counter()
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        RSS_CODE,
                        sys.executable,
                        "-m",
                        "pipeline.cli",
                        "-q",
                        "embed",
                        str(src),
                        "--encoder",
                        str(tmp / "enc"),
                        "--out",
                        str(tmp / "o.h5"),
                        "--layers",
                        "top",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=dict(os.environ),
                )
                dt = time.perf_counter() - t
                rss_mb = int(out.stdout.strip().splitlines()[-1]) / 1024
                size = (tmp / "o.h5").stat().st_size / 1e9
                print(
                    f"elmo embed --layers top, {args.rss_preset} preset, {n:,} sentences: peak RSS {rss_mb:,.0f} MB, "
                    f"{dt:.1f} s ({n / dt:,.0f} sent/s incl. start-up), output {size:.2f} GB",
                    flush=True,
                )
                (tmp / "o.h5").unlink()


if __name__ == "__main__":
    main()
