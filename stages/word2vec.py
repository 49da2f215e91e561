"""DVC stage `word2vec`: skip-gram vectors on the prepared corpus, aligned matrix, intrinsic metrics."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.config import load_params
from pipeline.errors import run_main
from pipeline.io import NEIGHBOURS_REPORT, check_arg_outputs, write_option_output
from pipeline.word2vec import run_word2vec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--out", default="data/word2vec")
    p.add_argument("--metrics", default="metrics/word2vec.json")
    p.add_argument("--report", default="reports/word2vec_neighbours.txt")
    p.set_defaults(output_kinds={"metrics": "word2vec scores", "report": NEIGHBOURS_REPORT})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    params = load_params(args.params)
    result = run_word2vec(params.word2vec, args.prepared, args.out)
    write_option_output(args, "metrics", result["metrics"])
    write_option_output(args, "report", result["neighbours"])


if __name__ == "__main__":
    run_main(main)
