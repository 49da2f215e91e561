"""Forward-LM perplexity of encoders (exported with their softmax) on a prepared split, split into
<UNK> targets and known words: how much of a perplexity is the out-of-vocabulary class.

    python scripts/perplexity_by_unk.py runs/adapt/encoder-conll.adapt/prepared \\
        runs/wikitext2-cpu/encoder-lm runs/adapt/encoder-conll
"""

from __future__ import annotations

import argparse
import math

import torch

from pipeline.bilm.model import batch_inputs
from pipeline.data.batching import IGNORE, BucketBatcher, make_batch
from pipeline.data.prepared import PreparedData
from pipeline.data.vocab import UNK_ID
from pipeline.encoder import Encoder


@torch.no_grad()
def nll_by_unk(model, data: PreparedData, split: str) -> dict[bool, list[float]]:
    """{is <UNK>: [summed NLL, targets]} of the forward LM."""
    sp, tot = data.split(split), {True: [0.0, 0], False: [0.0, 0]}
    for idx in BucketBatcher(sp.lengths, 8192, shuffle=False).batches():
        b = make_batch([sp.sentence(int(i)) for i in idx], len(data.vocab), idx)
        chars, index = batch_inputs(b.type_ids, data.char_tensor)
        out = model(chars, index, b.mask)
        keep = b.fwd_targets != IGNORE
        y = b.fwd_targets[keep]
        nll = -model.softmax.log_probs(out.forward_top[keep]).gather(1, y[:, None])[:, 0]
        for flag in (True, False):
            tot[flag][0] += float(nll[(y == UNK_ID) == flag].sum())
            tot[flag][1] += int(((y == UNK_ID) == flag).sum())
    return tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prepared")
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--split", default="valid")
    args = ap.parse_args()
    data = PreparedData(args.prepared)
    for d in args.encoders:
        tot = nll_by_unk(Encoder.from_pretrained(d).model.eval(), data, args.split)
        n = tot[True][1] + tot[False][1]
        ppl = {k: math.exp(v[0] / max(v[1], 1)) for k, v in tot.items()}
        print(
            f"{d}: forward perplexity {math.exp((tot[True][0] + tot[False][0]) / n):,.1f} over {n:,} targets; "
            f"<UNK> targets {tot[True][1] / n:.1%} (perplexity on them {ppl[True]:,.1f}), "
            f"known words {ppl[False]:,.1f}"
        )


if __name__ == "__main__":
    main()
