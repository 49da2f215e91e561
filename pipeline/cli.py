"""The `elmo` command. Exit codes: 0 ok, 1 failure (a one-line message), 2 usage error."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.errors import PipelineError, run_main
from pipeline.io import NEIGHBOURS_REPORT, SUMMARY_REPORT, is_stdio


def _say_to(*outputs):
    """Where a command's human-readable lines go: standard error when one of its ``outputs`` is
    ``-`` (standard output then carries that file), else standard output."""
    return sys.stderr if any(is_stdio(o) for o in outputs) else sys.stdout


def _cmd_config(args) -> int:
    from pipeline.config import load_params, to_dict

    params = load_params(args.params)
    print(json.dumps(to_dict(params), indent=2))
    return 0


def _cmd_prepare(args) -> int:
    from pipeline.config import load_params
    from pipeline.data.prepare import prepare_corpus
    from pipeline.io import write_option_output

    params = load_params(args.params)
    stats = prepare_corpus(params.prepare, args.out, progress=not args.quiet)
    if args.metrics:
        write_option_output(args, "metrics", stats)
    if not args.quiet and not is_stdio(args.metrics):
        print(json.dumps(stats, indent=2))
    return 0


def _cmd_word2vec(args) -> int:
    from pipeline.config import load_params
    from pipeline.io import write_option_output
    from pipeline.word2vec import run_word2vec

    result = run_word2vec(load_params(args.params).word2vec, args.prepared, args.out)
    write_option_output(args, "metrics", result["metrics"])
    write_option_output(args, "report", result["neighbours"])
    if not args.quiet and not is_stdio(args.metrics) and not is_stdio(args.report):
        print(json.dumps(result["metrics"], indent=2))
    return 0


def _cmd_pretrain(args) -> int:
    from pipeline.config import load_params
    from pipeline.train.pretrain import pretrain

    params = load_params(args.params)
    metrics = pretrain(
        params.model,
        params.pretrain,
        args.prepared,
        args.out,
        args.metrics,
        args.plots,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}, indent=2))
    return 0


def _cmd_evaluate_lm(args) -> int:
    from pipeline.io import write_option_output
    from pipeline.train.evaluate import evaluate_saved

    result = evaluate_saved(args.model, args.prepared, args.split, progress=not args.quiet)
    write_option_output(args, "metrics", result)
    if not args.quiet and not is_stdio(args.metrics):
        print(json.dumps(result, indent=2))
    return 0


def _cmd_word2vec_eval(args) -> int:
    from pipeline.io import write_option_output
    from pipeline.word2vec import evaluation_report, load_vectors

    kv = load_vectors(args.vectors)
    report = evaluation_report(kv, args.restrict_vocab, args.analogies, args.wordsim, args.simlex)
    result = {"vectors": str(args.vectors), "words": len(kv), "dim": kv.vector_size, **report}
    a = result["analogy"]
    if args.json:
        write_option_output(args, "json", result)

    def num(x):
        return "n/a" if x is None else f"{x:.4f}"

    out = _say_to(args.json)
    print(f"{args.vectors}: {len(kv)} words x {kv.vector_size} dims", file=out)
    print(
        f"analogy    accuracy {num(a['accuracy'])}  semantic {num(a['semantic'])}  "
        f"syntactic {num(a['syntactic'])}  evaluated {a['evaluated']}  oov {a['oov_rate']:.1%}"
        + (f"  malformed lines {a['malformed_lines']}" if a["malformed_lines"] else ""),
        file=out,
    )
    for name in ("wordsim353", "simlex999"):
        r = result[name]
        print(
            f"{name:<10} spearman {num(r['spearman'])}  pairs {r['pairs']}  oov {r['oov_rate']:.1%}"
            + (f"  malformed lines {r['malformed_lines']}" if r["malformed_lines"] else ""),
            file=out,
        )
    return 0


def _cmd_export(args) -> int:
    if args.format == "elmo":
        return _export_elmo(args)
    if args.format == "onnx":
        return _export_onnx(args)
    from pipeline.export import export_encoder
    from pipeline.io import read_json_output

    test = read_json_output(args.test_metrics, "test metrics") if args.test_metrics else None
    out = export_encoder(args.checkpoint, args.out_dir, args.prepared, args.with_softmax, test)
    if not args.quiet:
        print(f"exported encoder to {out}")
    return 0


def _export_onnx(args) -> int:
    from pipeline.io import directory_kind

    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    if directory_kind(args.checkpoint) == "task-model":
        from pipeline.tasks.export_onnx import export_task_onnx

        report = export_task_onnx(
            args.checkpoint, args.out_dir, args.int8, args.int8_max_drop, args.dev, args.check_text, say
        )
    else:
        from pipeline.export_onnx import export_onnx

        report = export_onnx(
            args.checkpoint, args.out_dir, args.prepared, args.int8, args.int8_min_cosine, args.check_text, say
        )
    if not args.quiet:
        speed = ", ".join(f"{k} {v:.2f}x PyTorch" for k, v in report["speed_vs_pytorch"].items())
        print(f"wrote {args.out_dir}/model.onnx ({'int8' if args.int8 else 'fp32'}; {speed}); parity in onnx.json")
    return 0


def _export_elmo(args) -> int:
    from pipeline.elmo_format import export_elmo

    out = export_elmo(args.checkpoint, args.out_dir, args.prepared, log=lambda m: print(m, file=sys.stderr))
    if not args.quiet:
        print(f"wrote {out}/options.json and {out}/weights.hdf5 (bilm-tf / AllenNLP ELMo format)")
    return 0


def _cmd_import_elmo(args) -> int:
    from pipeline.elmo_format import import_elmo

    out = import_elmo(args.options, args.weights, args.out_dir)
    if not args.quiet:
        print(f"imported encoder to {out} (no vocabulary or softmax: embed and finetune with it)")
    return 0


def _cmd_adapt(args) -> int:
    from pipeline.config import PretrainConfig
    from pipeline.train.adapt import DEFAULTS, adapt

    cfg = PretrainConfig(
        **{
            **DEFAULTS,
            **{
                k: v
                for k, v in (
                    ("epochs", args.epochs),
                    ("max_steps", args.steps),
                    ("max_minutes", args.minutes),
                    ("lr", args.lr),
                    ("seed", args.seed),
                )
                if v is not None
            },
        }
    )
    cfg.validate("elmo adapt")
    r = adapt(args.source, args.text, args.out_dir, cfg, args.valid_fraction, args.work_dir, progress=not args.quiet)
    if not args.quiet:
        print(
            f"adapted {args.source} on {r['train_tokens']:,} tokens ({r['steps']} steps, {r['minutes']:.1f} min): "
            f"held-out perplexity {r['valid_ppl_before']:.2f} -> {r['valid_ppl_after']:.2f}; "
            f"encoder (with softmax) in {args.out_dir}"
        )
    return 0


def _cmd_embed(args) -> int:
    from pipeline.data.lines import ReadStats
    from pipeline.encoder import Encoder, embed_file

    enc = Encoder.from_pretrained(args.encoder, bf16=args.bf16)
    stats = ReadStats()
    n = embed_file(
        enc,
        args.input,
        args.out,
        args.layers,
        args.batch_tokens,
        encoding_errors=args.encoding_errors,
        progress=not args.quiet,
        stats=stats,
    )
    if not args.quiet:
        print(f"embedded {n} lines into {args.out}{_read_counts(stats)}")
        _warn_tabs(args.input, stats, "give the text column alone, e.g. `cut -f2 FILE` when it is the second")
    return 0


def _warn_tabs(path, stats, hint: str) -> None:
    from pipeline.data.lines import tab_warning

    warning = tab_warning(path, stats, hint)
    if warning:
        print(warning, file=sys.stderr)


def _read_counts(stats) -> str:
    """'' or ' (N lines with bad characters replaced, a byte-order mark removed)'."""
    parts = ([f"{stats.replaced_utf8} lines with bad characters replaced"] if stats.replaced_utf8 else []) + (
        ["a byte-order mark removed"] if stats.bom else []
    )
    return f" ({', '.join(parts)})" if parts else ""


def _cmd_generate(args) -> int:
    from pipeline.encoder import Encoder

    enc = Encoder.from_pretrained(args.encoder)
    words = enc.generate(args.prompt, args.max_tokens, args.temperature, args.top_k, args.seed)
    prompt = " ".join(enc.tokenize(args.prompt))
    print((prompt + " " if prompt else "") + " ".join(words))
    return 0


def _cmd_lm_score(args) -> int:
    from pipeline.data.lines import input_lines
    from pipeline.encoder import Encoder
    from pipeline.lm import lm_sums, perplexities

    enc = Encoder.from_pretrained(args.encoder)
    lines = [text for _, text in input_lines(args.input, args.encoding_errors) if text.strip()]
    if not lines:
        raise PipelineError(f"{args.input}: no non-blank lines to score")
    s = lm_sums(enc, lines)
    result = {
        **perplexities(s["forward_nll"], s["backward_nll"], s["tokens"]),
        "oov_rate": s["oov_tokens"] / max(s["tokens"], 1),
        "sentences": len(lines),
    }
    if args.json:
        from pipeline.io import write_option_output

        write_option_output(args, "json", result)
    print(
        f"{args.input}: {len(lines)} sentences, {s['tokens']} predicted tokens (OOV {result['oov_rate']:.1%}); "
        f"perplexity forward {result['forward_ppl']:.2f}, backward {result['backward_ppl']:.2f}, "
        f"average {result['average_ppl']:.2f}",
        file=_say_to(args.json),
    )
    return 0


# --- downstream tasks --------------------------------------------------------------------------

# `elmo finetune` flags → the finetune key each sets (any key: --set SECTION.KEY=VALUE)
FINETUNE_OPTIONS = {
    "task": "task",
    "model": "model",
    "train": "data.train",
    "dev": "data.dev",
    "test": "data.test",
    "format": "data.format",
    "encoding_errors": "data.encoding_errors",
    "encoder": "inputs.encoder",
    "word2vec": "inputs.word2vec",
    "inputs": "inputs.use",
    "epochs": "training.epochs",
    "seed": "training.seed",
    "lr": "training.lr",
    "batch_size": "training.batch_size",
    "patience": "training.patience",
    "finetune_encoder": "training.finetune_encoder",
    "max_minutes": "training.max_minutes",
    "checkpoint_dir": "training.checkpoint_dir",
}


def infer_task_of(values: dict) -> tuple[str | None, str]:
    """The task of a finetune run that names none, and why: the training file (CoNLL-U: tag; one
    example per line: classify; CoNLL columns whose tags are not entity tags: tag), else a model
    type that learns one task only. (None, "") keeps the default, ner."""
    from pipeline.data.conllu import is_conllu
    from pipeline.data.labelled import conll_tags_look_like_entities, one_example_per_line
    from pipeline.tasks.models import tasks_of

    data = values.get("data", {})
    train = data.get("train")
    if train and is_conllu(train):
        return "tag", f"{train} is CoNLL-U; it is read for its {data.get('conllu_tags', 'upos').upper()} tags"
    if train and one_example_per_line(train):
        return "classify", f"{train} holds one example per line; --task ner or tag reads CoNLL columns"
    if train and conll_tags_look_like_entities(train, data.get("label_column", -1)) is False:
        return "tag", f"{train}'s tags are not entity tags; --task ner reads B-/I-/O entity tags"
    learns = tasks_of(values["model"]) if values.get("model") else []
    if len(learns) == 1:
        return learns[0], f"model {values['model']} learns only {learns[0]}"
    return None, ""


def _cmd_finetune(args) -> int:
    from pipeline.config import load_finetune_config, parse_set
    from pipeline.tasks.kinds import task_named
    from pipeline.tasks.models import check_model
    from pipeline.train.finetune import finetune, write_outputs

    overrides = parse_set(args.set)
    for flag, key in FINETUNE_OPTIONS.items():
        value = getattr(args, flag)
        if value is not None and value is not False:
            overrides[key] = value
    inferred: list[str] = []

    def infer_task(values: dict) -> str | None:
        task, why = infer_task_of(values)
        if task is not None:
            inferred.append(f"task: {task} ({why})")
        return task

    cfg = load_finetune_config(args.config, overrides, infer_inputs=True, infer_task=infer_task)
    for key in ("train", "dev"):
        if not getattr(cfg.data, key):
            raise PipelineError(f"--{key} is required (or `data: {{{key}: ...}}` in the --config file)")
    check_model(cfg, str(args.config) if args.config else "command line")
    if inferred and not args.quiet:
        print(inferred[0], file=sys.stderr)
    result = finetune(cfg, args.out, args.plots, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    write_outputs(result, args.metrics)
    if not args.quiet:
        key = task_named(cfg.task).metric
        line = f"saved {args.out}: dev {key} {result['dev'][key]:.4f}"
        if "test" in result:
            line += f", test {key} {result['test'][key]:.4f}"
        if "C" in result:
            chosen = f"C={result['C']} picked on dev"
        elif result.get("best_epoch"):
            chosen = f"best epoch {result['best_epoch']} of {result['epochs_run']}"
        else:
            chosen = "the mean of its members' probabilities"  # the ensemble trains nothing itself
        if "candidates" in result:
            chosen = f"model {result['model']} kept by {result.get('selected_by', 'auto')} on dev, {chosen}"
        print(line + f" ({chosen}, {result['seconds']:.0f} s)", file=_say_to(args.metrics))
    return 0


def _cmd_plot(args) -> int:
    from pipeline.plots import draw_pictures

    written = draw_pictures(args.directory)
    if not args.quiet:
        print("\n".join(f"wrote {p}" for p in written) if written else f"{args.directory}: no curve has rows yet")
    return 0


def _cmd_report(args) -> int:
    from pipeline.report import summary

    text = summary(args.metrics_dir, args.out)
    if not args.quiet and not is_stdio(args.out):
        print(text, end="")
    return 0


def _cmd_predict(args) -> int:
    from pipeline.data.lines import ReadStats
    from pipeline.io import atomic_path, check_new_file, standard_stream
    from pipeline.tasks.models import load_task_model

    to_file = args.output and not is_stdio(args.output)
    if to_file:  # its lines carry no mark that tells them from a user's JSONL: a file is never replaced
        check_new_file(
            args.output, "`elmo predict` never replaces a file", "give --output - to write to standard output"
        )
    model = load_task_model(args.model)
    stats = ReadStats()
    tabs_hint = "`elmo evaluate` scores a model on a labelled file"
    if not to_file:  # streamed to stdout as predicted
        model.predict_file(args.input, standard_stream("stdout"), args.encoding_errors, stats)
    else:
        with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8") as out:  # renamed at the end
            n = model.predict_file(args.input, out, args.encoding_errors, stats)
        if not args.quiet:
            print(f"wrote {n} predictions to {args.output}{_read_counts(stats)}", file=sys.stderr)
    if not args.quiet and not model.pairs:  # a pair model reads two tab-separated texts a line
        _warn_tabs(args.input, stats, tabs_hint)
    return 0


# the finetune settings that say how a labelled file is read (`elmo evaluate --set`)
READ_KEYS = tuple(
    f"data.{k}"
    for k in ("text_field", "text_pair_field", "label_field", "header", "label_separator")
    + ("token_column", "label_column", "tag_scheme", "conllu_tags")
)


LOOPBACK = ("127.0.0.1", "localhost", "::1")
# `elmo serve` flags → the ServeConfig key each sets, with what it bounds
SERVE_OPTIONS = {
    "host": "address",
    "port": "port",
    "max_body_bytes": "largest request body in bytes (413 beyond)",
    "max_texts": "texts or pairs per request",
    "max_chars": "characters per text",
    "max_tokens": "tokens per text",
    "max_queue": "texts waiting for a model before new requests get 503",
    "max_wait_ms": "how long a batch waits for more texts after its first (ms)",
    "batch_tokens": "padded tokens per model call",
    "max_embed_values": "numbers in one /embed answer",
}


def _cmd_serve(args) -> int:
    from pipeline.config import ServeConfig
    from pipeline.serve.app import serve

    cfg = ServeConfig(**{k: getattr(args, k) for k in SERVE_OPTIONS})
    cfg.validate()
    if cfg.host not in LOOPBACK:
        print(
            f"warning: serving on {cfg.host}: whoever can reach this machine can use the models "
            "(no authentication; put a proxy with access control in front)",
            file=sys.stderr,
        )
    quiet = args.quiet
    serve(args.models, cfg, log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    return 0


def _cmd_evaluate(args) -> int:
    from pipeline.config import did_you_mean, load_finetune_config, parse_set, with_values
    from pipeline.data.labelled import format_of
    from pipeline.tasks.examples import check_labels, check_same_shape
    from pipeline.tasks.models import load_task_model

    overrides = parse_set(args.set)
    unknown = [k for k in overrides if k not in READ_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], list(READ_KEYS))
        raise PipelineError(
            f"--set {unknown[0]}: evaluate takes only how the file is read{hint}: {', '.join(READ_KEYS)}"
        )
    model = load_task_model(args.model)
    task = model.task
    # the format given, else the one the model was trained with, else the file's name, else the training file's
    trained_format = model.cfg.data.format or format_of(args.file) or format_of(model.cfg.data.train)
    read_as = with_values(
        model.cfg, {"data": {"encoding_errors": args.encoding_errors, "format": args.format or trained_format}}
    )
    cfg = load_finetune_config(None, overrides, base=read_as) if overrides else read_as
    try:
        data = task.read(cfg, args.file, model.tokenize)
    except PipelineError as e:
        raise PipelineError(f"{e} (this is a {task.name} model: it reads {task.reads})") from None
    if not data.sentences:
        raise PipelineError(f"{args.file}: no labelled examples")
    check_same_shape(data, model.pairs, f"{args.model} was trained on")
    note = check_labels(data, model.labels, task.labels_in, task.unseen_labels_ok)
    if note:
        print(note, file=sys.stderr)
    scores = model.scores(data)
    result = {
        "model": str(args.model),
        "file": str(args.file),
        "examples": len(data.sentences),
        "repaired_tags": data.repaired,
        "skipped_empty": data.skipped_empty,
        "replaced_lines": data.replaced_lines,
        "controls_as_space": data.controls_as_space,
        **scores,
    }
    if args.metrics:
        from pipeline.io import write_option_output

        write_option_output(args, "metrics", result)
    out = _say_to(args.metrics)
    counts = [
        f"{n} {what}"
        for n, what in (
            (data.repaired, "tags repaired"),
            (data.replaced_lines, "lines with bad characters replaced"),
            (data.controls_as_space, "lines with control characters read as spaces"),
            (data.skipped_empty, "empty rows skipped"),
        )
        if n
    ]
    if counts:
        print(f"{args.file}: " + ", ".join(counts), file=out)
    for line in task.report(scores, args.file, len(data.sentences)):
        print(line, file=out)
    return 0


def at_least(low: int):
    """An argparse type: an int >= ``low`` (else a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def above_zero(text: str) -> float:
    """An argparse type: a number > 0 (else a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be above 0 (and finite), got {text}")
    return value


def seed(text: str) -> int:
    """An argparse type: a random seed, 0 … 2**32 - 1 (else a usage error, exit 2)."""
    from pipeline.config import MAX_SEED

    value = at_least(0)(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED}, got {value}")
    return value


FINETUNE_EPILOG = """\
examples:
  elmo finetune --task classify --train train.tsv --dev dev.tsv --out models/clf
      TSV/CSV with a header row naming the columns sentence and label (model auto)
  elmo finetune --task classify --train train.txt --dev dev.txt --format tsv \\
      --set data.text_field=1 --set data.label_field=0 --out models/clf
      no header row: label<TAB>text lines; fields are 0-based column numbers
  elmo finetune --task classify --train t.jsonl --dev d.jsonl --set data.text_field=review --out models/clf
  elmo finetune --task ner --train train.conll --dev dev.conll --set data.tag_scheme=iob1 --out models/ner
  elmo finetune --task tag --train train.conllu --dev dev.conllu --out models/pos
  elmo finetune --task pair --train train.tsv --dev dev.tsv --out models/nli
  elmo finetune --task classify --model tfidf --train train.tsv --dev dev.tsv --out models/tfidf

keys are in four sections, set as --set SECTION.KEY=VALUE (all: docs/reference/config.md); important:
  data.text_field, data.label_field   column names, or 0-based numbers for a headerless file
  data.text_pair_field                pair, regress: the second text (default: found by name)
  data.header                         TSV/CSV: true/false (default: a header exactly when fields are names)
  data.token_column, data.label_column  ner, tag: CoNLL columns (default 0 and -1)
  data.tag_scheme                     ner: iob1 | iob2 | bioes, how the files are tagged
  inputs.word_vectors                 trainable | frozen | lookup (the word2vec part)
  head.hidden, head.dropout, head.pooling  the BiLSTM's size, dropout, max | attention pooling
  head.elmo_output                    true: ELMo also at the task BiLSTM's output
  training.min_epochs                 epochs before early stopping may count (small data needs them)
"""


def build_parser() -> argparse.ArgumentParser:
    from pipeline.tasks.kinds import TASKS
    from pipeline.tasks.models import MODEL_CHOICES, MODEL_TYPES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    parser = argparse.ArgumentParser(prog="elmo", description="ELMo-style pretraining and finetuning pipeline.")
    parser.add_argument("-q", "--quiet", dest="quiet_all", action="store_true", help="no progress bars or summaries")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "config", parents=[common], help="print the resolved configuration (defaults + presets + params file)"
    )
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("prepare", parents=[common], help="tokenize a corpus, build the vocabulary and shards")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--out", default="data/prepared", help="output directory (default: data/prepared)")
    p.add_argument("--metrics", default=None, help="also write the stats JSON here")
    p.set_defaults(func=_cmd_prepare, output_kinds={"metrics": "prepare statistics"})

    p = sub.add_parser(
        "word2vec", parents=[common], help="train skip-gram vectors on prepared data (the word2vec stage)"
    )
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--prepared", default="data/prepared", help="prepared data (default: data/prepared)")
    p.add_argument("--out", default="data/word2vec", help="output directory (default: data/word2vec)")
    p.add_argument("--metrics", default="metrics/word2vec.json", help="intrinsic scores JSON")
    p.add_argument("--report", default="reports/word2vec_neighbours.txt", help="nearest-neighbour report")
    p.set_defaults(func=_cmd_word2vec, output_kinds={"metrics": "word2vec scores", "report": NEIGHBOURS_REPORT})

    p = sub.add_parser(
        "pretrain",
        parents=[common],
        help="train the biLM in this process (the pretrain stage; several GPUs: python -m pipeline.train.launch "
        "stages/pretrain.py)",
    )
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--prepared", default="data/prepared", help="prepared data (default: data/prepared)")
    p.add_argument("--out", default="models/pretrain", help="run directory: best/ and checkpoints/")
    p.add_argument("--metrics", default="metrics/pretrain.json", help="training summary JSON")
    p.add_argument("--plots", default="plots/pretrain", help="directory for the train/valid curves")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    p.set_defaults(func=_cmd_pretrain, output_kinds={"metrics": "pretrain summary"})

    p = sub.add_parser("evaluate-lm", parents=[common], help="perplexity of a saved biLM on a prepared split")
    p.add_argument("--model", default="models/pretrain/best", help="a saved biLM or checkpoint directory")
    p.add_argument("--prepared", default="data/prepared", help="the prepared data it was trained on")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--metrics", default="metrics/evaluate_lm.json", help="perplexities JSON")
    p.set_defaults(func=_cmd_evaluate_lm, output_kinds={"metrics": "perplexities"})

    p = sub.add_parser(
        "word2vec-eval",
        parents=[common],
        help="evaluate any word2vec-format vectors (analogies, WordSim-353, SimLex-999)",
    )
    p.add_argument("vectors", help="word2vec text or binary file (format detected), or a gensim .kv file")
    p.add_argument("--analogies", help="analogy questions file (default: gensim's questions-words.txt)")
    p.add_argument("--wordsim", help="word-pair similarity file (default: gensim's wordsim353.tsv)")
    p.add_argument("--simlex", help="word-pair similarity file (default: gensim's simlex999.txt)")
    p.add_argument(
        "--restrict-vocab",
        type=at_least(1),
        default=300_000,
        help="consider only this many most frequent words (default: 300000, as gensim)",
    )
    p.add_argument("--json", help="also write the results as JSON here")
    p.set_defaults(func=_cmd_word2vec_eval, output_kinds={"json": "word2vec evaluation"})

    from pipeline.config import INT8_MAX_DROP, INT8_MIN_COSINE

    p = sub.add_parser(
        "export",
        parents=[common],
        help="export a trained biLM as a self-contained encoder directory (or as ELMo weight files with --format elmo)",
    )
    p.add_argument(
        "checkpoint",
        help="models/pretrain/best or a checkpoint directory (step-NNNNNNN); "
        "with --format elmo or onnx also an encoder directory; with --format onnx also a task model (bilstm)",
    )
    p.add_argument("out_dir", help="directory to write (replaced atomically)")
    p.add_argument(
        "--format",
        choices=["encoder", "elmo", "onnx"],
        default="encoder",
        help="encoder: our encoder directory (default); elmo: options.json + weights.hdf5 in the "
        "bilm-tf layout that AllenNLP's Elmo reads; onnx: the encoder or task model directory with the biLM "
        "(and the task's head) as an ONNX graph (model.onnx), checked against PyTorch",
    )
    p.add_argument("--int8", action="store_true", help="onnx: quantize the graph's weights to int8 (dynamic)")
    p.add_argument(
        "--int8-min-cosine",
        type=float,
        default=INT8_MIN_COSINE,
        help=f"onnx --int8: refuse when an int8 vector's cosine with fp32's falls below this "
        f"(default {INT8_MIN_COSINE})",
    )
    p.add_argument(
        "--int8-max-drop",
        type=float,
        default=INT8_MAX_DROP,
        help=f"onnx --int8 of a task model: refuse when the dev score (its task's metric) drops by more than this "
        f"(default {INT8_MAX_DROP}: one point)",
    )
    p.add_argument(
        "--dev",
        help="onnx of a task model: a labelled file (the model's task format) to check parity and int8's score on "
        "(default: the model's own dev file, when it is there)",
    )
    p.add_argument("--check-text", help="onnx: sentences (one per line) to check the graph on (default: built in)")
    p.add_argument("--prepared", help="the prepared data it was trained on (default: recorded at training)")
    p.add_argument("--with-softmax", action="store_true", help="include the softmax (for lm-score, generate)")
    p.add_argument("--test-metrics", help="a JSON of test perplexities for the model card")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "adapt",
        parents=[common],
        help="continue training a biLM on unlabelled in-domain text (domain adaptation), then export it",
    )
    p.add_argument("source", help="an encoder exported with --with-softmax, or models/pretrain/best / a checkpoint")
    p.add_argument("text", help="in-domain text: a file, directory, glob or .gz, one sentence per line")
    p.add_argument("out_dir", help="the adapted encoder directory to write (with its softmax)")
    p.add_argument("--minutes", type=above_zero, help="wall-clock budget (default: none)")
    p.add_argument("--steps", type=at_least(1), help="optimizer-step budget (default: none)")
    p.add_argument("--epochs", type=at_least(1), help="passes over the text (default 3)")
    p.add_argument("--lr", type=above_zero, help="Adam learning rate (default 0.001)")
    p.add_argument("--seed", type=seed)
    p.add_argument("--valid-fraction", type=float, default=0.05, help="share held out for validation (default 0.05)")
    p.add_argument(
        "--work-dir",
        help="prepared text, checkpoints and curves (default: OUT_DIR.adapt beside it); "
        "running the same command again resumes there",
    )
    p.set_defaults(func=_cmd_adapt)

    p = sub.add_parser(
        "import-elmo",
        parents=[common],
        help="turn ELMo weight files (bilm-tf / AllenNLP options.json + .hdf5) into an encoder directory",
    )
    p.add_argument("options", help="the model's options.json")
    p.add_argument("weights", help="the model's weights .hdf5 (e.g. elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5)")
    p.add_argument("out_dir", help="encoder directory to write (replaced atomically)")
    p.set_defaults(func=_cmd_import_elmo)

    p = sub.add_parser("embed", parents=[common], help="embed every line of a text file into HDF5")
    p.add_argument("input", help="UTF-8 text, one sentence per line (tokenized as at training); - reads stdin")
    p.add_argument("--encoder", required=True, help="an exported encoder directory")
    p.add_argument("--out", required=True, help="output .h5: dataset 'N' holds line N (0-based)")
    p.add_argument(
        "--layers",
        choices=["all", "top", "average"],
        default="all",
        help="all: (L+1, n, 2P) per line; top: the last layer (n, 2P); average: mean of layers",
    )
    p.add_argument("--batch-tokens", type=at_least(3), default=4096, help="padded tokens per batch (default 4096)")
    p.add_argument("--encoding-errors", choices=["error", "replace"], default="error")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 matmuls in the biLM (faster on AVX512-BF16/AMX CPUs and GPUs; vectors differ from "
        "fp32 by bf16 rounding; on a CPU without native bf16 it runs in fp32, with a warning)",
    )
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("generate", parents=[common], help="sample text from the forward LM of an encoder")
    p.add_argument("--encoder", required=True, help="an encoder exported with --with-softmax")
    p.add_argument("--prompt", default="", help="text to continue (tokenized as at training)")
    p.add_argument("--max-tokens", type=at_least(1), default=30)
    p.add_argument("--temperature", type=above_zero, default=1.0)
    p.add_argument("--top-k", type=at_least(1), default=None)
    p.add_argument("--seed", type=seed, default=0)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("lm-score", parents=[common], help="perplexity of a text file under an encoder with softmax")
    p.add_argument("input", help="UTF-8 text, one sentence per line; - reads stdin")
    p.add_argument("--encoder", required=True)
    p.add_argument("--json", help="also write the result here")
    p.add_argument(
        "--encoding-errors",
        choices=["error", "replace"],
        default="error",
        help="invalid UTF-8 / control characters: stop with file:line (default) or replace with U+FFFD",
    )
    p.set_defaults(func=_cmd_lm_score, output_kinds={"json": "lm scores"})

    p = sub.add_parser(
        "finetune",
        parents=[common],
        help="train a NER tagger or a sentence classifier on [word2vec ; ELMo mix] inputs",
        epilog=FINETUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        choices=list(TASKS),
        help="ner: entity tags (B-/I-/O) in CoNLL columns; tag: any per-token tags (POS, chunks) in "
        "CoNLL columns or CoNLL-U (.conllu); classify: a label per text; pair: a label per pair of texts "
        "(NLI, paraphrase); regress: a number per text or pair (the last three: TSV/CSV/JSONL, one example "
        "per line). Default: from the training file: .conllu means tag, one example per line classify "
        "(of pairs where it has two text fields), CoNLL columns ner when the tags are entity tags, else tag",
    )
    p.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        help="auto (default): every model type that learns the task, the best on dev kept; "
        + "; ".join(f"{m.name} = {m.summary}" for m in MODEL_TYPES.values()),
    )
    p.add_argument("--train", help="labelled training file")
    p.add_argument("--dev", help="labelled dev file (early stopping, best model)")
    p.add_argument("--test", help="labelled test file (scored once at the end)")
    p.add_argument("--encoder", help="an exported encoder directory (ELMo inputs; default: models/encoder)")
    p.add_argument(
        "--word2vec", help="word2vec vectors, text/binary word2vec format or .kv (default: data/word2vec/vectors.bin)"
    )
    p.add_argument(
        "--inputs",
        choices=["both", "elmo", "word2vec"],
        help="default: both, or whichever of --encoder/--word2vec was given",
    )
    p.add_argument("--out", required=True, help="model directory to write (best dev model, replaced atomically)")
    p.add_argument(
        "--config",
        help="YAML file of finetune options: the sections (data, inputs, head, training) of params.yaml's "
        "finetune_ner section (a copied `finetune_ner:` section works too)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any finetune option, e.g. --set head.pooling=attention --set data.label_field=polarity",
    )
    p.add_argument("--epochs", type=at_least(1))
    p.add_argument("--batch-size", type=at_least(1))
    p.add_argument("--lr", type=above_zero)
    p.add_argument("--patience", type=at_least(1))
    p.add_argument("--seed", type=seed)
    p.add_argument("--max-minutes", type=above_zero)
    p.add_argument("--finetune-encoder", action="store_true", help="update the biLM too (at training.encoder_lr)")
    p.add_argument(
        "--checkpoint-dir",
        help="keep the resumable state here (after every epoch and on SIGTERM); "
        "running the same command again resumes from it",
    )
    p.add_argument(
        "--format",
        choices=["tsv", "csv", "jsonl"],
        help="classify: the labelled files' format (default: from the file name)",
    )
    p.add_argument(
        "--encoding-errors",
        choices=["error", "replace"],
        help="invalid UTF-8 / control characters in the labelled files: stop with file:line "
        "(default) or replace with U+FFFD and count",
    )
    p.add_argument("--metrics", help="write dev/test scores and the training history as JSON here")
    p.add_argument(
        "--plots",
        help="directory for live train.tsv/dev.tsv curves (and confusion.json); curves.png and confusion.png "
        "are drawn at the end",
    )
    p.set_defaults(func=_cmd_finetune, output_kinds={"metrics": "finetune scores"})

    p = sub.add_parser(
        "plot", parents=[common], help="draw curves.png (and confusion.png) of a plots directory, offline"
    )
    p.add_argument("directory", help="a plots directory: the *.tsv curves of pretraining or finetuning")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("report", parents=[common], help="the headline numbers of the pipeline's stages")
    p.add_argument("--metrics-dir", default="metrics", help="the stages' metrics files (default: metrics)")
    p.add_argument("--out", help="also write the summary to this text file")
    p.set_defaults(func=_cmd_report, output_kinds={"out": SUMMARY_REPORT})

    p = sub.add_parser("predict", parents=[common], help="tag or classify each line of a text file → JSONL")
    p.add_argument(
        "input", help="UTF-8 text, one sentence per line (tokenized as the model was trained); - reads stdin"
    )
    p.add_argument("--model", required=True, help="a model directory from `elmo finetune`")
    p.add_argument("--output", help="write the JSONL here (default: stdout)")
    p.add_argument(
        "--encoding-errors",
        choices=["error", "replace"],
        default="error",
        help="invalid UTF-8: stop with file:line (default) or replace with U+FFFD",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", parents=[common], help="score a finetuned model on a labelled file")
    p.add_argument("file", help="labelled file in the format the model was trained on")
    p.add_argument("--model", required=True, help="a model directory from `elmo finetune`")
    p.add_argument("--metrics", help="also write the scores as JSON here")
    p.add_argument(
        "--format",
        choices=["tsv", "csv", "jsonl"],
        help="classify: the file's format (default: the model's setting, else from the file name)",
    )
    p.add_argument(
        "--encoding-errors",
        choices=["error", "replace"],
        default="error",
        help="invalid UTF-8 / control characters: stop with file:line (default) or replace with U+FFFD",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"how to read this file when it differs from the training files: {', '.join(READ_KEYS)} "
        "(e.g. --set data.text_field=1 --set data.label_field=0 for a headerless label<TAB>text file)",
    )
    p.set_defaults(func=_cmd_evaluate, output_kinds={"metrics": "evaluate scores"})

    from pipeline.config import ServeConfig

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve task models and encoders over HTTP (JSON; micro-batched; bounded)",
        description="POST /predict (task models), POST /embed (encoders), GET /health /ready /metadata "
        "/openapi.json, and a page at / to try them. Loopback only unless --host says otherwise.",
    )
    p.add_argument(
        "models", nargs="+", metavar="MODEL_DIR", help="task-model or encoder directories (named by their names)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port, printed at start)")
    for key, what in SERVE_OPTIONS.items():
        if key not in ("host", "port"):
            default = getattr(ServeConfig, key)
            p.add_argument(f"--{key.replace('_', '-')}", type=type(default), default=default, metavar="N",
                           help=f"{what} (default {default:,})")  # fmt: skip
    p.set_defaults(func=_cmd_serve)
    return parser


def _check_unknown_flags(parser: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """A misspelt flag (``--modle``) is a usage error from its subcommand, with the closest flag."""
    if not extra:
        return
    from pipeline.config import did_you_mean

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--")]
    word = next((x for x in extra if x.startswith("-")), extra[0])
    hint = did_you_mean(word.split("=", 1)[0], flags) if word.startswith("--") else ""
    sub.error(f"unrecognized argument: {word}{hint}")


def _check_command_word(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A misspelt command (``elmo finetnue``) or a command's flag before the command (``elmo
    --model m predict``) is a usage error naming the closest command, or where the flag goes."""
    from pipeline.config import did_you_mean

    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    own = {s for a in parser._actions for s in a.option_strings}
    for word in argv:
        if word.startswith("-") and word.split("=", 1)[0] not in own:
            parser.error(f"{word} before the command: a command's flags go after it (elmo COMMAND {word} ...)")
        if not word.startswith("-"):
            if word not in commands:
                parser.error(f"unknown command {word!r}{did_you_mean(word, list(commands))} (elmo --help lists them)")
            return


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _check_command_word(parser, argv)
    args, extra = parser.parse_known_args(argv)
    _check_unknown_flags(parser, args, extra)
    if args.command == "export" and args.format == "elmo":
        given = [
            flag for flag, on in (("--with-softmax", args.with_softmax), ("--test-metrics", args.test_metrics)) if on
        ]
        if given:  # a usage error (exit 2): ELMo weight files hold the encoder only
            parser.error(f"{given[0]} does not apply to --format elmo (ELMo weight files hold no softmax or metrics)")
    args.quiet = args.quiet or args.quiet_all
    if sys.stdout is None and not args.quiet:  # what it would say would be lost without a word
        raise PipelineError("standard output is closed: redirect it to a file, or give -q")
    from pipeline.io import check_arg_outputs

    check_arg_outputs(args)  # an output path that would be refused fails before any work
    return args.func(args)


def entry() -> None:
    run_main(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
