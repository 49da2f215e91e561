"""Benchmark: biLM training tokens/s, ours vs. a straightforward implementation, and FLOP/s vs. matmul peak.

    .venv/bin/python bench/pretrain_throughput.py                 # cpu and small presets, PTB sentences
    .venv/bin/python bench/pretrain_throughput.py --presets cpu,cpu:model.softmax=full --data wikitext2
    .venv/bin/python bench/pretrain_throughput.py --presets cpu --bf16 --no-baseline   # bf16 autocast
    .venv/bin/python bench/pretrain_throughput.py --presets cpu --no-baseline --compile --warmup 6
    .venv/bin/python bench/pretrain_throughput.py --presets small --no-baseline --profile 15
    python3 bench/pretrain_throughput.py --prepared bench-data/ptb --presets small --device cuda --bf16

"Ours" is the training path of pipeline/bilm/: the token encoder once per distinct token of a
batch and only over the character columns the batch needs (batch_inputs, trim_chars); on CPU both
LSTM stacks in one scan with a hand-written backward (LSTMPScan; ``--no-scan``: PyTorch's own
kernel); the full softmax as a chunked fused linear + NLL (LinearNLL); on CPU PyTorch's fused
optimizer kernel (``--no-fused``: its per-tensor loop). The baseline is the same model and weights
on the same batches, with every token position encoded over all 50 character ids, PyTorch's LSTM
kernel, autograd's softmax and the per-tensor optimizer loop. Batches are each preset's own size
(``pretrain.max_tokens`` padded tokens). Tokens are real tokens (words + </S>) per second of
training (forward, backward, optimizer step). FLOPs are counted analytically for what each variant
computes (×3 for forward + backward) and compared with this machine's matmul rate in the precision
used, measured in the same run (torch.mm, 1024² on CPU, 8192² on GPU). Medians over the timed steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.bilm.model import BiLM, Kernels, batch_inputs  # noqa: E402
from pipeline.bilm.tokens import trim_chars  # noqa: E402
from pipeline.config import load_params, parse_set  # noqa: E402
from pipeline.data.batching import BucketBatcher, make_batch  # noqa: E402
from pipeline.data.prepared import PreparedData  # noqa: E402
from pipeline.train.pretrain import bilm_optimizer  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def step_flops(model: BiLM, chars: torch.Tensor, b) -> float:
    """Forward FLOPs of one batch as computed (chars: the rows and columns actually encoded) × 3."""
    cfg = model.cfg
    U, C = chars.shape
    E, F, P, H, L = cfg.char_embed_dim, cfg.n_filters, cfg.projection_dim, cfg.cell_dim, cfg.n_layers
    cnn = sum(2 * E * w * n * max(C - w + 1, 0) for w, n in cfg.filters) * U
    highway = cfg.n_highway * 2 * F * 2 * F * U
    proj = 2 * F * P * U
    positions = b.type_ids.numel()  # the sequence bodies run over every (padded) position
    per_position = {
        "lstm": 4 * H * P + 4 * H * P + H * P,  # input, recurrent, projection (multiply-adds)
        "gru": 3 * H * P + 3 * H * H + H * P,
        "tcn": 2 * cfg.tcn_kernel * P * H,
    }[cfg.body]
    body = 2 * L * positions * 2 * per_position  # 2 directions
    softmax = softmax_flops(model, b)
    return 3.0 * (cnn + highway + proj + body + softmax)


def softmax_flops(model: BiLM, b) -> float:
    """Forward FLOPs of the softmax for the batch's targets (adaptive: head for all, a tail only for its words)."""
    cfg, P = model.cfg, model.cfg.projection_dim
    y = torch.cat([b.fwd_targets.flatten(), b.bwd_targets.flatten()])
    y = y[y >= 0]
    if cfg.softmax != "adaptive":
        return 2.0 * len(y) * P * (model.vocab_size if cfg.softmax == "full" else cfg.n_samples + 1)
    a = model.softmax.adaptive
    flops = 2.0 * len(y) * P * (a.shortlist_size + a.n_clusters)
    for i in range(a.n_clusters):
        lo, hi = a.cutoffs[i], a.cutoffs[i + 1]
        d = a.tail[i][0].out_features
        flops += 2.0 * int(((y >= lo) & (y < hi)).sum()) * (P * d + d * (hi - lo))
    return flops


def load_data(args, tmp: Path) -> tuple[PreparedData, str]:
    """The prepared sentences: ``--prepared DIR`` as it is, else ``--data`` prepared now into ``tmp``."""
    if args.prepared:
        return PreparedData(args.prepared), str(args.prepared)
    from pipeline.data.prepare import prepare_corpus  # only here: a GPU machine may lack what it needs

    (tmp / "d.yaml").write_text("presets: []\n" if args.data == "default" else f"presets: [{args.data}]\n")
    prepare_corpus(load_params(tmp / "d.yaml").prepare, tmp / "prep", progress=False)
    return PreparedData(tmp / "prep"), args.data


def bench(
    model: BiLM,
    params,
    data: PreparedData,
    batches,
    dedup: bool,
    warmup: int,
    device: torch.device,
    bf16: bool,
    fused: bool = True,
    compile_: bool = False,
    profiler=None,
):
    """Median tokens/s and FLOP/s over the steps after ``warmup``; ``profiler`` (a
    torch.profiler.profile) records those timed steps only."""
    model.to(device)
    if compile_:  # the token encoder only; dynamic: its (distinct tokens, columns) shape changes every batch
        model.token_encoder = torch.compile(model.token_encoder, dynamic=True)
    opt = bilm_optimizer(model, params.pretrain, fused=dedup and fused and device.type == "cpu")
    train = data.split("train")
    rates, flops = [], []
    for k, idx in enumerate(batches):
        if profiler is not None and k == warmup:
            profiler.start()
        b = make_batch([train.sentence(int(i)) for i in idx], len(data.vocab), idx)
        sync(device)
        t = time.perf_counter()
        chars, index = batch_inputs(b.type_ids, data.char_tensor, dedup=dedup)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(chars.to(device), index.to(device), b.mask.to(device))
            f, bw = model.lm_nll(out, b.fwd_targets.to(device), b.bwd_targets.to(device))
        ((f + bw) / (2 * b.n_targets)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        dt = time.perf_counter() - t
        if k >= warmup:
            rates.append(b.n_targets / dt)
            used = trim_chars(chars, model.token_encoder.cnn.max_width) if dedup else chars
            flops.append(step_flops(model, used, b) / dt)
    if profiler is not None:
        profiler.stop()
    return statistics.median(rates), statistics.median(flops)


def preset_yaml(spec: str) -> str:
    """``cpu`` or ``cpu:model.softmax=adaptive:pretrain.max_tokens=4096`` → a params file's text."""
    import yaml

    name, *sets = spec.split(":")
    params: dict = {"presets": [name]}
    for key, value in parse_set(sets).items():
        section, _, field = key.partition(".")
        params.setdefault(section, {})[field] = value
    return yaml.safe_dump(params)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--presets",
        default="cpu,small",
        help="comma-separated presets, each optionally with overrides: cpu:model.softmax=adaptive",
    )
    ap.add_argument(
        "--data",
        default="ptb",
        help="dataset preset for the sentences (default: ptb), or 'default' for the embedded corpus",
    )
    ap.add_argument(
        "--prepared",
        type=Path,
        default=None,
        help="a directory written by `elmo prepare` / stages/prepare.py (instead of --data)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also append the printed table to this file")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast; peak = bf16 matmul rate")
    ap.add_argument(
        "--no-scan",
        action="store_true",
        help="ours with PyTorch's own LSTM kernel instead of the two-stack scan (model.py: LSTMPScan)",
    )
    ap.add_argument(
        "--no-fused",
        action="store_true",
        help="ours with PyTorch's per-tensor optimizer loop instead of its fused CPU kernel",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="ours with torch.compile of the token encoder (char CNN + highway + projection); "
        "use --warmup to keep the compilations out of the timed steps",
    )
    ap.add_argument("--no-baseline", action="store_true", help="time only our implementation")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also print the N operators that take the most time in our timed steps (torch.profiler)",
    )
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="padded tokens per batch (default: each preset's pretrain.max_tokens)",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    out = args.out.open("a") if args.out else None

    def emit(line: str) -> None:
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as tmp:
        data, source = load_data(args, Path(tmp))
        lengths = data.split("train").lengths
        device = torch.device(args.device)
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        peak = matmul_flops(device, dtype, 8192 if device.type == "cuda" else 1024)
        where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
        emit(
            f"{source}: {len(lengths):,} train sentences, vocab {len(data.vocab):,}; {where}; "
            f"torch {torch.__version__}; "
            f"{'bf16' if args.bf16 else 'fp32'} matmul peak {peak / 1e9:.1f} GFLOP/s"
        )
        emit(
            f"{'preset':<8} {'batch':>6} {'params':>11} {'ours tok/s':>11} {'baseline tok/s':>15} {'ratio':>6} "
            f"{'ours GFLOP/s':>13} {'of peak':>8} {'baseline GFLOP/s':>17} {'of peak':>8}"
        )
        for name in args.presets.split(","):
            (Path(tmp) / "p.yaml").write_text(preset_yaml(name))
            params = load_params(Path(tmp) / "p.yaml")
            max_tokens = args.max_tokens or params.pretrain.max_tokens
            batches = BucketBatcher(lengths, max_tokens, seed=0).batches(0)[: args.warmup + args.steps]
            torch.manual_seed(0)
            kernels = Kernels(scan=not args.no_scan)
            model = BiLM(params.model, len(data.vocab), kernels).train()
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile else None
            ours, ours_f = bench(
                model,
                params,
                data,
                batches,
                True,
                args.warmup,
                device,
                args.bf16,
                not args.no_fused,
                args.compile,
                prof,
            )
            if prof is not None:
                emit(f"{name}: where our {args.steps} timed steps spend their time")
                emit(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
            base = base_f = float("nan")
            if not args.no_baseline:
                torch.manual_seed(0)
                model = BiLM(params.model, len(data.vocab), Kernels.straightforward()).train()
                base, base_f = bench(model, params, data, batches, False, args.warmup, device, args.bf16)
            emit(
                f"{name:<8} {max_tokens:>6} {model.n_params():>11,} {ours:>11,.0f} {base:>15,.0f} {ours / base:>5.2f}x "
                f"{ours_f / 1e9:>13.2f} {ours_f / peak:>8.1%} {base_f / 1e9:>17.2f} {base_f / peak:>8.1%}"
            )


if __name__ == "__main__":
    main()
