#!/usr/bin/env bash
# The prepared GPU check for the biLM (a few minutes on one GPU): the `small` preset with bf16
# autocast, training tokens/s and model FLOP/s as a fraction of the GPU's measured bf16 matmul rate,
# then the same for `original`. Run from the repository root on a machine with CUDA torch:
#   bash bench/gpu_check.sh            (uses PTB from ../shared/data when present, else the embedded corpus)
set -euo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
data=default
[ -f ../shared/data/ptb/ptb.train.txt ] && data=ptb
python bench/pretrain_throughput.py --presets small --device cuda --bf16 --steps 40 --data "$data" --max-tokens 16384
python bench/pretrain_throughput.py --presets small,original --device cuda --bf16 --steps 20 --data "$data" --no-baseline --max-tokens 32768
