"""DVC stage `evaluate_lm`: test-set perplexity (forward, backward, average) of the best biLM."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.errors import run_main
from pipeline.io import check_arg_outputs, write_option_output
from pipeline.train.evaluate import evaluate_saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/pretrain/best")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--split", default="test")
    p.add_argument("--metrics", default="metrics/evaluate_lm.json")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(output_kinds={"metrics": "perplexities"})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    result = evaluate_saved(args.model, args.prepared, args.split, progress=not args.quiet)
    write_option_output(args, "metrics", result)
    if not args.quiet:
        print(f"evaluate_lm: {args.split} perplexity {result[f'{args.split}_average_ppl']:.2f} (both directions)")


if __name__ == "__main__":
    run_main(main)
