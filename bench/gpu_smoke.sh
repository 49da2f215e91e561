#!/usr/bin/env bash
# GPU smoke run of the whole biLM path on one device: a short pretraining through `elmo pretrain`
# (accelerate on the GPU), evaluate-lm, export, and embedding with the exported encoder on the GPU.
# Needs the prepared sentences of `make bench-data` (device tool: carry bench-data). PRESET=tiny and
# PY=.venv/bin/python run it on CPU here.
set -euo pipefail
PRESET=${PRESET:-small}; DEV_OUT=${OUT:-/tmp/out}; W=/tmp/smoke; rm -rf $W; mkdir -p $W $DEV_OUT
printf 'presets: [%s]\npretrain: {max_steps: 30, eval_every: 30, eval_max_sentences: 300, checkpoint_every: 30, log_every: 10}\n' "$PRESET" > $W/p.yaml
${PY:-python3} -m pipeline.cli pretrain --params $W/p.yaml --prepared bench-data/ptb --out $W/run --metrics $DEV_OUT/pretrain.json --plots $W/plots
${PY:-python3} -m pipeline.cli evaluate-lm --model $W/run/best --prepared bench-data/ptb --split valid --metrics $DEV_OUT/evaluate_lm.json -q
${PY:-python3} -m pipeline.cli export $W/run/best $W/enc --prepared bench-data/ptb -q
${PY:-python3} - <<PY
import json, time, torch
from pipeline import Encoder
enc = Encoder.from_pretrained("$W/enc")
enc.model.to("cuda" if torch.cuda.is_available() else "cpu")
s = [["the", "company", "said", "it", "expects", "profit"]] * 64
t = time.perf_counter(); out = enc.embed(s); dt = time.perf_counter() - t
print(json.dumps({"device": str(next(enc.model.parameters()).device), "shape": list(out[0].shape), "sentences_per_sec": round(len(s) / dt, 1)}))
PY
ls $W/plots
