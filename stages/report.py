"""DVC stage `report`: the headline numbers of every stage's metrics in a few lines
(reports/summary.txt, printed too; the same as `elmo report`)."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.errors import PipelineError, run_main
from pipeline.io import check_arg_outputs, write_report_atomic
from pipeline.report import summary_lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics-dir", default="metrics")
    p.add_argument("--out", default="reports/summary.txt")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    check_arg_outputs(args)
    lines = summary_lines(args.metrics_dir)
    if not lines:
        raise PipelineError(f"{args.metrics_dir}: no metrics files of the pipeline's stages")
    text = "\n".join(lines) + "\n"
    write_report_atomic(args.out, "headline numbers of the pipeline's stages (elmo report)", text)
    if not args.quiet:
        print(text, end="")


if __name__ == "__main__":
    run_main(main)
