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


def _cmd_word2vec_eval(args) -> int:
    from pipeline.io import write_json_atomic
    from pipeline.word2vec import evaluate_analogies, evaluate_pairs, gensim_datapath, load_vectors

    kv = load_vectors(args.vectors)
    analogies = args.analogies or gensim_datapath("questions-words.txt")
    a = evaluate_analogies(kv, analogies, args.restrict_vocab).summary()
    result = {"vectors": str(args.vectors), "words": len(kv), "dim": kv.vector_size, "analogy": a}
    for name, path in (("wordsim353", args.wordsim or gensim_datapath("wordsim353.tsv")),
                       ("simlex999", args.simlex or gensim_datapath("simlex999.txt"))):
        result[name] = evaluate_pairs(kv, path, args.restrict_vocab)
    if args.json:
        write_json_atomic(args.json, result)
    def num(x):
        return "n/a" if x is None else f"{x:.4f}"

    print(f"{args.vectors}: {len(kv)} words x {kv.vector_size} dims")
    print(f"analogy    accuracy {num(a['accuracy'])}  semantic {num(a['semantic'])}  "
          f"syntactic {num(a['syntactic'])}  evaluated {a['evaluated']}  oov {a['oov_rate']:.1%}"
          + (f"  malformed lines {a['malformed_lines']}" if a["malformed_lines"] else ""))
    for name in ("wordsim353", "simlex999"):
        r = result[name]
        print(f"{name:<10} spearman {num(r['spearman'])}  pairs {r['pairs']}  oov {r['oov_rate']:.1%}"
              + (f"  malformed lines {r['malformed_lines']}" if r["malformed_lines"] else ""))
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

    p = sub.add_parser("word2vec-eval", parents=[common],
                       help="evaluate any word2vec-format vectors (analogies, WordSim-353, SimLex-999)")
    p.add_argument("vectors", help="word2vec text or binary file (format detected), or a gensim .kv file")
    p.add_argument("--analogies", help="analogy questions file (default: gensim's questions-words.txt)")
    p.add_argument("--wordsim", help="word-pair similarity file (default: gensim's wordsim353.tsv)")
    p.add_argument("--simlex", help="word-pair similarity file (default: gensim's simlex999.txt)")
    p.add_argument("--restrict-vocab", type=int, default=300_000,
                   help="consider only this many most frequent words (default: 300000, as gensim)")
    p.add_argument("--json", help="also write the results as JSON here")
    p.set_defaults(func=_cmd_word2vec_eval)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.quiet = args.quiet or args.quiet_all
    return args.func(args)


def entry() -> None:
    run_main(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
