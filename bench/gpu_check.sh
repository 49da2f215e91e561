#!/usr/bin/env bash
# The prepared GPU check for the biLM (a few minutes on one GPU): `small` with bf16 autocast, training
# tokens/s against the straightforward baseline and model FLOP/s as a fraction of the GPU's measured
# bf16 matmul rate, then `small` and `original` alone at larger batches. The GPU machine has python3
# with torch, accelerate and numpy but not gensim, datasets or ../shared, so the sentences are
# prepared here first and travel with the run:
#   make bench-data                                    (here, on CPU: bench-data/ptb, a few MB)
#   bash bench/gpu_check.sh                            (there; device tool: carry bench-data)
#   bash bench/gpu_check.sh --dry-run                  (here: the same script on CPU, tiny preset)
# The table is printed and appended to $OUT/gpu_check.txt ($OUT: the device tool's output folder;
# the current directory when unset).
set -euo pipefail
PY=${PYTHON:-python3}
DATA=${BENCH_DATA:-bench-data/ptb}
REPORT="${OUT:-.}/gpu_check.txt"
[ -f "$DATA/meta.json" ] || { echo "gpu_check: no prepared sentences in $DATA: run 'make bench-data' first" >&2; exit 1; }
run() { "$PY" bench/pretrain_throughput.py --prepared "$DATA" --out "$REPORT" "$@"; }
if [ "${1:-}" = "--dry-run" ]; then
  run --presets tiny --device cpu --bf16 --steps 2 --warmup 1 --max-tokens 512
  exit 0
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
run --presets small --device cuda --bf16 --steps 40 --max-tokens 16384
run --presets small,original --device cuda --bf16 --steps 20 --no-baseline --max-tokens 32768
