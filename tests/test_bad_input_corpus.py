"""A corpus of bad and odd input files run through every command that reads text: never a traceback,
every refusal one line naming the file, and nothing undecodable or malformed accepted silently."""

import gzip
import json
import random

import pytest

from pipeline.cli import main
from pipeline.errors import run_main

from conftest import REPO

NER = REPO / "data" / "samples" / "ner"
SENTIMENT = REPO / "data" / "samples" / "sentiment"
# what each kind of file must get: "refused" by every command (exit 1 naming it); "malformed" for
# labelled data / configs: refused by the commands that read that structure, plain text elsewhere;
# "odd": any valid outcome (ok, or a clean refusal), some with a report asserted below
UNDECODABLE, MALFORMED, ODD = "refused", "malformed", "odd"


def bad_files(d):
    """(name, bytes, kind): 30 files. Labelled-data names end in their format's suffix."""
    rnd = random.Random(0)
    conll = (NER / "train.conll").read_bytes()[:2000].rsplit(b"\n\n", 1)[0] + b"\n"
    tsv = (
        b"label\tsentence\n"
        b"positive\tThe plot is not dull .\n"
        b"neutral\tThe soundtrack was shot .\n"
        b"negative\tThe plot is dull .\n"
    )
    files = [
        ("binary.txt", bytes(rnd.randrange(256) for _ in range(5000)), UNDECODABLE),
        ("png.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 4, UNDECODABLE),
        ("gzip-named-txt.txt", gzip.compress(b"the cat sat .\n" * 50), UNDECODABLE),
        ("latin1.txt", "café au lait , naïve\nsecond line\n".encode("latin-1"), UNDECODABLE),
        ("utf16-bom.txt", "the cat sat .\nmore words\n".encode("utf-16"), UNDECODABLE),
        ("utf16le.txt", "the cat sat .\nmore words\n".encode("utf-16-le"), UNDECODABLE),
        ("nul-in-token.txt", b"one\0two three\nfour five\n", UNDECODABLE),
        ("nul-lines.txt", b"\0\0\0\0\n" * 20, UNDECODABLE),
        ("control-chars.txt", b"bell\x07 here\nescape\x1b[31m red\n", UNDECODABLE),
        ("invalid-utf8-conll.conll", conll.replace(b"George", b"Geo\xffrge", 1), UNDECODABLE),
        ("utf8-bom.txt", b"\xef\xbb\xbfthe cat sat .\nthe dog ran .\n", ODD),
        ("crlf.txt", b"the cat sat .\r\nthe dog ran .\r\n", ODD),
        ("lone-cr.txt", b"the cat sat .\rthe dog ran .\n", ODD),
        ("unicode-separators.txt", "the cat\u2028sat .\nthe\u0085dog\u2029ran\x0c.\n".encode(), ODD),
        ("empty.txt", b"", ODD),
        ("whitespace-only.txt", b"   \n\t\n\n  \n", ODD),
        ("no-final-newline.txt", b"the cat sat .", ODD),
        (
            "huge-line.txt",
            (" ".join(rnd.choice(["the", "cat", "sat", "on", "mat"]) for _ in range(20000))).encode() + b"\n",
            ODD,
        ),
        ("huge-token.txt", b"a" * 1_000_000 + b" end\n", ODD),
        ("conll-wrong-columns.conll", conll.replace(b"\n", b" extra\n", 3), MALFORMED),
        ("conll-bad-tag.conll", conll.replace(b"B-ORG", b"X-ORG", 1), MALFORMED),
        ("conll-one-column.conll", b"George\nBush\nresigned\n\n", MALFORMED),
        ("conll-given-tsv.conll", tsv, MALFORMED),
        ("tsv-wrong-columns.tsv", tsv + b"one\ttwo\tthree\n", MALFORMED),
        ("tsv-no-label-column.tsv", b"sentence\n" + b"The plot is not dull .\n", MALFORMED),
        ("csv-unclosed-quote.csv", b'label,sentence\npositive,"The plot is not dull .\n', MALFORMED),
        ("jsonl-not-json.jsonl", b'{"sentence": "The plot is dull .", "label": "positive"}\n{oops\n', MALFORMED),
        (
            "jsonl-missing-field.jsonl",
            b'{"sentence": "The plot .", "label": "positive"}\n{"text": "x", "label": "neutral"}\n',
            MALFORMED,
        ),
        ("jsonl-array.jsonl", b'["The plot is not dull .", "positive"]\n', MALFORMED),
        ("yaml-tab-indent.yaml", b"prepare:\n\tcorpus: default\n", MALFORMED),
        ("yaml-unknown-key.yaml", b"prepare:\n  corpuss: default\n", MALFORMED),
        ("yaml-wrong-type.yaml", b"pretrain:\n  max_tokens: many\n", MALFORMED),
        ("yaml-list.yaml", b"- prepare\n- pretrain\n", MALFORMED),
    ]
    for name, data, _ in files:
        (d / name).write_bytes(data)
    return [(d / name, kind) for name, _, kind in files]


@pytest.fixture(scope="module")
def models(trained, vectors, tmp_path_factory):
    """A NER and a sentiment model (word vectors only: quick) for predict/evaluate."""
    d = tmp_path_factory.mktemp("models")
    common = ["--word2vec", str(vectors), "--inputs", "word2vec", "--epochs", "1", "-q"]
    assert (
        main(
            [
                "finetune",
                "--task",
                "ner",
                "--train",
                str(NER / "train.conll"),
                "--dev",
                str(NER / "dev.conll"),
                "--out",
                str(d / "ner"),
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                "--task",
                "classify",
                "--train",
                str(SENTIMENT / "train.tsv"),
                "--dev",
                str(SENTIMENT / "dev.tsv"),
                "--out",
                str(d / "clf"),
                *common,
            ]
        )
        == 0
    )
    return d


def commands(path, trained, vectors, models, out):
    """Every command that reads a text file, given ``path`` (name → argv)."""
    fmt = {".jsonl": "jsonl", ".csv": "csv"}.get(path.suffix, "tsv")
    params = out / f"{path.name}.params.yaml"
    params.write_text(json.dumps({"prepare": {"corpus": str(path), "valid_fraction": 0.0, "test_fraction": 0.0}}))
    w2v = ["--word2vec", str(vectors), "--inputs", "word2vec", "--epochs", "1", "-q"]
    cmds = {
        "prepare": ["prepare", "--params", str(params), "--out", str(out / "prep"), "-q"],
        "embed": ["embed", str(path), "--encoder", str(trained / "enc"), "--out", str(out / "e.h5")],
        "lm-score": ["lm-score", str(path), "--encoder", str(trained / "enc")],
        "predict": ["predict", str(path), "--model", str(models / "ner"), "--output", str(out / "p.jsonl")],
        "evaluate-ner": ["evaluate", str(path), "--model", str(models / "ner")],
        "evaluate-classify": ["evaluate", str(path), "--model", str(models / "clf"), "--format", fmt],
        "finetune-ner": [
            "finetune",
            "--task",
            "ner",
            "--train",
            str(path),
            "--dev",
            str(NER / "dev.conll"),
            "--out",
            str(out / "m-ner"),
            *w2v,
        ],
        "finetune-classify": [
            "finetune",
            "--task",
            "classify",
            "--train",
            str(path),
            "--dev",
            str(SENTIMENT / "dev.tsv"),
            "--format",
            fmt,
            "--out",
            str(out / "m-clf"),
            *w2v,
        ],
        "word2vec-eval": ["word2vec-eval", str(vectors), "--analogies", str(path)],
    }
    if path.suffix == ".yaml":
        cmds["config"] = ["config", "--params", str(path)]
        cmds["prepare-params"] = ["prepare", "--params", str(path), "--out", str(out / "prep2"), "-q"]
    return cmds


def run(argv, capsys):
    """(exit code, stdout, stderr) of `elmo argv` in this process; an exception that is not a
    user error escapes run_main, and so fails the test with its traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(main, argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


READS = {
    ".conll": {"evaluate-ner", "finetune-ner"},
    ".tsv": {"evaluate-classify", "finetune-classify"},
    ".csv": {"evaluate-classify", "finetune-classify"},
    ".jsonl": {"evaluate-classify", "finetune-classify"},
    ".yaml": {"config", "prepare-params"},
}


def test_every_bad_file_through_every_reading_command(trained, vectors, models, tmp_path, capsys):
    files = bad_files(tmp_path)
    assert len(files) >= 25
    runs = 0
    for path, kind in files:
        out = tmp_path / f"out-{path.name}"
        out.mkdir()
        for name, argv in commands(path, trained, vectors, models, out).items():
            code, stdout, stderr = run(argv, capsys)
            runs += 1
            what = f"{path.name} | {name}: exit {code}: {stderr.strip()[-300:]}"
            assert code in (0, 1), what
            if code == 1:
                lines = [x for x in stderr.strip().splitlines() if x.startswith("error: ")]
                assert len(lines) == 1 and str(path) in lines[0], what  # one line naming the file
            refused = (
                kind == UNDECODABLE
                and name not in ("config", "prepare-params")
                or kind == MALFORMED
                and name in READS.get(path.suffix, set())
            )
            if refused:
                assert code == 1, what  # never accepted silently
            if path.name == "utf8-bom.txt" and code == 0 and name in ("embed", "predict"):
                assert "byte-order mark removed" in stderr + stdout, what
    assert runs >= 25 * 9
