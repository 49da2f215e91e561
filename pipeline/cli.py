"""The `elmo` command. Exit codes: 0 ok, 1 failure (a one-line message), 2 usage error."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.errors import PipelineError, run_main


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


def _cmd_export(args) -> int:
    from pipeline.export import export_encoder

    test = None
    if args.test_metrics:
        try:
            test = json.loads(Path(args.test_metrics).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PipelineError(f"{args.test_metrics}: cannot read test metrics JSON ({e})") from None
    out = export_encoder(args.checkpoint, args.out_dir, args.prepared, args.with_softmax, test)
    if not args.quiet:
        print(f"exported encoder to {out}")
    return 0


def _cmd_embed(args) -> int:
    from pipeline.export import Encoder, embed_file

    if args.batch_tokens < 3:
        raise PipelineError("--batch-tokens must be at least 3")
    enc = Encoder.from_pretrained(args.encoder)
    n = embed_file(enc, args.input, args.out, args.layers, args.batch_tokens,
                   encoding_errors=args.encoding_errors, progress=not args.quiet)
    if not args.quiet:
        print(f"embedded {n} lines into {args.out}")
    return 0


def _cmd_generate(args) -> int:
    from pipeline.export import Encoder

    enc = Encoder.from_pretrained(args.encoder)
    words = enc.generate(args.prompt, args.max_tokens, args.temperature, args.top_k, args.seed)
    prompt = " ".join(enc.tokenize(args.prompt))
    print((prompt + " " if prompt else "") + " ".join(words))
    return 0


def _cmd_lm_score(args) -> int:
    import math

    from pipeline.export import Encoder, _read_lines

    enc = Encoder.from_pretrained(args.encoder)
    lines = [text for _, text in _read_lines(Path(args.input), "error") if text.strip()]
    if not lines:
        raise PipelineError(f"{args.input}: no non-blank lines to score")
    s = enc.lm_sums(lines)
    n = max(s["tokens"], 1)
    result = {
        "forward_ppl": math.exp(s["forward_nll"] / n), "backward_ppl": math.exp(s["backward_nll"] / n),
        "average_ppl": math.exp((s["forward_nll"] + s["backward_nll"]) / (2 * n)),
        "tokens": s["tokens"], "oov_rate": s["oov_tokens"] / n, "sentences": len(lines),
    }
    if args.json:
        from pipeline.io import write_json_atomic

        write_json_atomic(args.json, result)
    print(f"{args.input}: {len(lines)} sentences, {s['tokens']} predicted tokens (OOV {result['oov_rate']:.1%}); "
          f"perplexity forward {result['forward_ppl']:.2f}, backward {result['backward_ppl']:.2f}, "
          f"average {result['average_ppl']:.2f}")
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

    p = sub.add_parser("export", parents=[common], help="export a trained biLM as a self-contained encoder directory")
    p.add_argument("checkpoint", help="models/pretrain/best or a checkpoint directory (step-NNNNNNN)")
    p.add_argument("out_dir", help="directory to write (replaced atomically)")
    p.add_argument("--prepared", help="the prepared data it was trained on (default: recorded at training)")
    p.add_argument("--with-softmax", action="store_true", help="include the softmax (for lm-score, generate)")
    p.add_argument("--test-metrics", help="a JSON of test perplexities for the model card")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("embed", parents=[common], help="embed every line of a text file into HDF5")
    p.add_argument("input", help="UTF-8 text, one sentence per line (tokenized as at training)")
    p.add_argument("--encoder", required=True, help="an exported encoder directory")
    p.add_argument("--out", required=True, help="output .h5: dataset 'N' holds line N (0-based)")
    p.add_argument("--layers", choices=["all", "top", "average"], default="all",
                   help="all: (L+1, n, 2P) per line; top: the last layer (n, 2P); average: mean of layers")
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per batch (default 4096)")
    p.add_argument("--encoding-errors", choices=["error", "replace"], default="error")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("generate", parents=[common], help="sample text from the forward LM of an encoder")
    p.add_argument("--encoder", required=True, help="an encoder exported with --with-softmax")
    p.add_argument("--prompt", default="", help="text to continue (tokenized as at training)")
    p.add_argument("--max-tokens", type=int, default=30)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("lm-score", parents=[common], help="perplexity of a text file under an encoder with softmax")
    p.add_argument("input", help="UTF-8 text, one sentence per line")
    p.add_argument("--encoder", required=True)
    p.add_argument("--json", help="also write the result here")
    p.set_defaults(func=_cmd_lm_score)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.quiet = args.quiet or args.quiet_all
    return args.func(args)


def entry() -> None:
    run_main(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
