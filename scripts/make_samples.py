"""Write the small labelled samples that `make repro` finetunes on (data/samples/), deterministically.

They are project-made (templates + name lists written for this repository, no licence questions),
in the style of the embedded Lee news corpus. Dev and test draw half of their names from lists
the training split never uses, so a model must generalise from context and spelling, not memorise.

    python scripts/make_samples.py            # rewrite data/samples/
    python scripts/make_samples.py --check    # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "samples"

PER = {
    "train": [
        "John Howard",
        "Simon Crean",
        "Yasser Arafat",
        "Ariel Sharon",
        "Peter Hollingworth",
        "Mary Smith",
        "Bob Brown",
        "Alan Jones",
        "Kim Beazley",
        "George Bush",
        "Tony Blair",
        "Shane Warne",
    ],
    "new": ["Anna Kowalski", "Ravi Patel", "Lena Fischer", "Tom Nguyen", "Greta Olsen", "Omar Haddad"],
}
LOC = {
    "train": ["Sydney", "Canberra", "Melbourne", "Gaza", "Jerusalem", "Kabul", "Brisbane", "London", "Perth"],
    "new": ["Darwin", "Hobart", "Nairobi", "Lisbon", "Quito", "Oslo"],
}
ORG = {
    "train": ["Qantas", "Telstra", "the United Nations", "Hamas", "the Reserve Bank", "Ansett", "BHP"],
    "new": ["Westpac", "the Red Cross", "Fairfax", "Greenpeace"],
}
MISC = {"train": ["Australian", "Palestinian", "Israeli", "Afghan", "British"], "new": ["Kenyan", "Norwegian"]}

NER_TEMPLATES = [
    "{PER} said in {LOC} today that the talks would go on .",
    "Police in {LOC} say the fire is now under control .",
    "{ORG} has told {PER} it will cut jobs in {LOC} .",
    "The {MISC} Government says {PER} will visit {LOC} next week .",
    "{PER} , the chief executive of {ORG} , resigned on Monday .",
    "Firefighters near {LOC} are still battling the blaze .",
    "A spokesman for {ORG} said the figures were encouraging .",
    "{MISC} officials met {PER} in {LOC} .",
    "Shares in {ORG} fell sharply after the announcement .",
    "{PER} told reporters the {MISC} team was ready .",
    "Rain is expected across {LOC} later this week .",
    "The union says {ORG} workers in {LOC} will strike .",
    "{PER} has been charged over the attack in {LOC} .",
    "The weather bureau says the storm will reach {LOC} tonight .",
    "Talks between {ORG} and {PER} broke down yesterday .",
    "More than 100 {MISC} soldiers arrived in {LOC} .",
]

POSITIVE = ["wonderful", "moving", "funny", "beautiful", "clever", "gripping", "charming", "superb"]
NEGATIVE = ["boring", "clumsy", "dull", "tedious", "awful", "shallow", "predictable", "messy"]
NEUTRAL = ["long", "in colour", "released in May", "shot in Perth", "two hours", "based on a novel"]
SUBJECTS = [
    "The film",
    "This movie",
    "The plot",
    "The acting",
    "The script",
    "The ending",
    "The story",
    "The soundtrack",
]
SENTIMENT_TEMPLATES = [
    ("{S} is {A} .", None),
    ("{S} was {A} from start to finish .", None),
    ("I found {s} {A} .", None),
    ("{S} is not {A} .", "flip"),
    ("{S} was never {A} .", "flip"),
    ("Nobody could call {s} {A} .", "flip"),
    ("{S} is {N} .", "neutral"),
    ("{S} was {N} , as expected .", "neutral"),
]


def _pick(rng: random.Random, pool: dict, split: str) -> str:
    if split != "train" and rng.random() < 0.5:
        return rng.choice(pool["new"])
    return rng.choice(pool["train"])


def ner_sentences(n: int, split: str, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        rows: list[tuple[str, str]] = []
        for word in rng.choice(NER_TEMPLATES).split():
            slot = word[1:-1] if word.startswith("{") else None
            if slot is None:
                rows.append((word, "O"))
                continue
            value = _pick(rng, {"PER": PER, "LOC": LOC, "ORG": ORG, "MISC": MISC}[slot], split)
            toks = value.split()
            if toks[0] == "the":  # "the United Nations": the article stays outside the entity
                rows.append(("the", "O"))
                toks = toks[1:]
            rows += [(t, ("B-" if k == 0 else "I-") + slot) for k, t in enumerate(toks)]
        rows[0] = (rows[0][0][0].upper() + rows[0][0][1:], rows[0][1])
        out.append(rows)
    return out


def sentiment_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template, kind = rng.choice(SENTIMENT_TEMPLATES)
        subject = rng.choice(SUBJECTS)
        if kind == "neutral":
            label, adj = "neutral", rng.choice(NEUTRAL)
        else:
            polarity = rng.choice(["positive", "negative"])
            adj = rng.choice(POSITIVE if polarity == "positive" else NEGATIVE)
            label = polarity if kind is None else {"positive": "negative", "negative": "positive"}[polarity]
        text = template.format(S=subject, s=subject[0].lower() + subject[1:], A=adj, N=adj)
        out.append((label, text))
    return out


def render() -> dict[str, str]:
    files = {}
    for split, n, seed in (("train", 400, 1), ("dev", 100, 2), ("test", 100, 3)):
        sents = ner_sentences(n, split, seed)
        files[f"ner/{split}.conll"] = "-DOCSTART- O\n\n" + "".join(
            "".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sents
        )
    for split, n, seed in (("train", 400, 11), ("dev", 100, 12), ("test", 100, 13)):
        files[f"sentiment/{split}.tsv"] = "label\tsentence\n" + "".join(
            f"{y}\t{t}\n" for y, t in sentiment_rows(n, seed)
        )
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = p.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python scripts/make_samples.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
