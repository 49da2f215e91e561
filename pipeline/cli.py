"""The `elmo` command. Exit codes: 0 ok, 1 failure (a one-line message), 2 usage error."""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.errors import run_main


def _cmd_config(args) -> int:
    from pipeline.config import load_params, to_dict

    params = load_params(args.params)
    print(json.dumps(to_dict(params), indent=2))
    return 0


def _cmd_prepare(args) -> int:
    from pipeline.config import load_params
    from pipeline.data.prepare import prepare_corpus
    from pipeline.io import write_json_atomic

    params = load_params(args.params)
    stats = prepare_corpus(params.prepare, args.out, progress=not args.quiet)
    if args.metrics:
        write_json_atomic(args.metrics, stats)
    if not args.quiet:
        print(json.dumps(stats, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    parser = argparse.ArgumentParser(prog="elmo", description="ELMo-style pretraining and finetuning pipeline.")
    parser.add_argument("-q", "--quiet", dest="quiet_all", action="store_true", help="no progress bars or summaries")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", parents=[common], help="print the resolved configuration (defaults + presets + params file)")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("prepare", parents=[common], help="tokenize a corpus, build the vocabulary and shards")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--out", default="data/prepared", help="output directory (default: data/prepared)")
    p.add_argument("--metrics", default=None, help="also write the stats JSON here")
    p.set_defaults(func=_cmd_prepare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.quiet = args.quiet or args.quiet_all
    return args.func(args)


def entry() -> None:
    run_main(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
