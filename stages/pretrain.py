"""DVC stage `pretrain`: train the biLM (run through `python -m pipeline.train.launch`, i.e. accelerate)."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse

from pipeline.config import load_params
from pipeline.errors import run_main
from pipeline.io import check_arg_outputs
from pipeline.train.launch import die_with_launcher
from pipeline.train.pretrain import pretrain


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--out", default="models/pretrain")
    p.add_argument("--metrics", default="metrics/pretrain.json")
    p.add_argument("--plots", default="plots/pretrain")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(output_kinds={"metrics": "pretrain summary"})
    args = p.parse_args(argv)
    check_arg_outputs(args)
    die_with_launcher()  # a trainer never outlives its launcher (ours, accelerate launch, torchrun)
    params = load_params(args.params)
    pretrain(
        params.model,
        params.pretrain,
        args.prepared,
        args.out,
        args.metrics,
        args.plots,
        resume=not args.no_resume,
        progress=not args.quiet,
    )


if __name__ == "__main__":
    run_main(main)
