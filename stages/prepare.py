"""DVC stage `prepare`: raw corpus → tokenized splits, vocab, char ids, shards; stats as metrics."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.config import load_params
from pipeline.data.prepare import prepare_corpus
from pipeline.errors import run_main
from pipeline.io import check_arg_outputs, write_option_output


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="data/prepared")
    p.add_argument("--metrics", default="metrics/prepare.json")
    p.set_defaults(output_kinds={"metrics": "prepare statistics"})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    params = load_params(args.params)
    stats = prepare_corpus(params.prepare, args.out)
    write_option_output(args, "metrics", stats)


if __name__ == "__main__":
    run_main(main)
