"""DVC stage `finetune_ner` (and, with --section finetune_sentiment, `finetune_sentiment`):
train a task model on the `finetune_*` section of the params, write the model directory, the
headline metrics (--metrics, for `dvc metrics show`), the full scores and history (--details) and
the plots (live curves, then PNG pictures)."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.config import load_params
from pipeline.errors import run_main
from pipeline.io import check_arg_outputs
from pipeline.train.finetune import finetune, write_outputs


def main(argv=None, section: str = "finetune_ner"):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--section", default=section, choices=["finetune_ner", "finetune_sentiment"])
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--metrics", required=True, help="headline numbers (flat JSON)")
    p.add_argument("--details", required=True, help="every score, the history, the candidates (JSON)")
    p.add_argument("--plots", required=True)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(output_kinds={"metrics": "finetune summary", "details": "finetune scores"})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    cfg = getattr(load_params(args.params), args.section)
    result = finetune(cfg, args.out, args.plots, progress=not args.quiet)
    write_outputs(result, args.details, summary=args.metrics)


if __name__ == "__main__":
    run_main(main)
