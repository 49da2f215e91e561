"""Raw-text tokenizers: speed on many lines and agreement with the tokenization of real corpora.

    python bench/tokenizers.py [--lines 1000000] [--shared ../shared/data]

Raw text is made from tokenized corpora by a small rule detokenizer (below, neutral to the
tokenizers compared): SST sentences (Penn Treebank conventions: ``n't`` split, ``` `` ```/``''``
quotes, -LRB-/-RRB-) and WikiText-2 valid lines (Moses-like: ``@-@`` for inner hyphens). Each
tokenizer re-tokenizes the raw text; "exact" is the share of lines given back token for token,
"token F1" the overlap of the token multisets. Speed: lines/s over ``--lines`` raw lines (the
corpora's lines repeated), one process. ``moses`` needs ``pip install sacremoses`` (not a
dependency; skipped without it).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.data.tokenizers import PTBTokenizer, WhitespaceTokenizer  # noqa: E402

PTB_BRACKETS = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}


def detokenize(tokens: list[str]) -> str:
    """Tokens → plausible raw text: no space before closing punctuation and clitics, none after
    opening brackets; PTB quotes and brackets back to ASCII, WikiText's @-@ joiners joined."""
    text = " ".join(PTB_BRACKETS.get(t, t) for t in tokens)
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = re.sub(r"`` ?", '"', text)
    text = re.sub(r" ?''", '"', text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r" ([.,!?;:%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{$]) ", r"\1", text)
    return text


def reference(tokens: list[str]) -> list[str]:
    """The corpus's own tokens in plain spelling (brackets, quotes, joiners as the raw text has them)."""
    out = []
    for t in tokens:
        t = PTB_BRACKETS.get(t, t)
        out.append({"@-@": "-", "@,@": ",", "@.@": "."}.get(t, t))
    return out


def agreement(tokenize, lines: list[list[str]]) -> tuple[float, float]:
    exact = hits = n_ref = n_out = 0
    for toks in lines:
        ref = [t.replace('"', "''") for t in reference(toks)]
        got = [{"``": "''", '"': "''"}.get(t, t) for t in tokenize(detokenize(toks))]  # quote style aside
        exact += got == ref
        hits += sum((Counter(got) & Counter(ref)).values())
        n_ref, n_out = n_ref + len(ref), n_out + len(got)
    p, r = hits / max(n_out, 1), hits / max(n_ref, 1)
    return exact / len(lines), 2 * p * r / max(p + r, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    shared = Path(args.shared)
    sst = [
        line.split("\t", 1)[1].split()
        for line in (shared / "sst" / "sst2_train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    wiki = [
        line.split()
        for line in (shared / "wikitext-2" / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("=")
    ]
    tokenizers = {"ptb (nltk, chosen)": PTBTokenizer().tokenize, "whitespace": WhitespaceTokenizer().tokenize}
    try:
        from sacremoses import MosesTokenizer

        moses = MosesTokenizer("en")
        tokenizers["moses (sacremoses)"] = lambda s: moses.tokenize(s, escape=False)
    except ImportError:
        print("sacremoses not installed: moses skipped", file=sys.stderr)
    raw = [detokenize(t) for t in sst + wiki]
    corpus = (raw * (args.lines // len(raw) + 1))[: args.lines]
    print(
        f"{len(sst)} SST sentences, {len(wiki)} WikiText-2 valid lines; speed over {len(corpus):,} raw lines "
        f"({sum(map(len, corpus)) / 1e6:.1f} MB)"
    )
    print("| tokenizer | SST exact | SST token F1 | WikiText exact | WikiText token F1 | lines/s |")
    print("|---|---|---|---|---|---|")
    for name, tokenize in tokenizers.items():
        se, sf = agreement(tokenize, sst)
        we, wf = agreement(tokenize, wiki)
        start = time.perf_counter()
        for line in corpus:
            tokenize(line)
        rate = len(corpus) / (time.perf_counter() - start)
        print(f"| {name} | {se:.3f} | {sf:.4f} | {we:.3f} | {wf:.4f} | {rate:,.0f} |", flush=True)
    print(f"command: python bench/tokenizers.py --lines {args.lines}")


if __name__ == "__main__":
    main()
