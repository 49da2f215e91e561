"""DVC stage `report`: the headline numbers of every stage's metrics in a few lines
(reports/summary.txt, printed too; the same as `elmo report`)."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.errors import run_main
from pipeline.io import SUMMARY_REPORT, check_arg_outputs
from pipeline.report import summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics-dir", default="metrics")
    p.add_argument("--out", default="reports/summary.txt")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(output_kinds={"out": SUMMARY_REPORT})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    text = summary(args.metrics_dir, args.out)
    if not args.quiet:
        print(text, end="")


if __name__ == "__main__":
    run_main(main)
