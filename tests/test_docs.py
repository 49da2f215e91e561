"""The user docs: reference pages generated from the code and in sync with it, a short README
with the two commands, and no development history in anything a user reads."""

import importlib.util
import re

from helpers import REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# words that tell how the project was built, not what it does (CHANGELOG.md is where history goes)
HISTORY = re.compile(
    r"\b(this session|issue \d+|as the issue|earlier (run|inputs|code)|used to be|"
    r"the machine was slow|commit [0-9a-f]{7})\b",
    re.IGNORECASE,
)


def _reference_pages():
    spec = importlib.util.spec_from_file_location("reference_pages", REPO / "scripts" / "reference_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_match_the_code():
    stale = _reference_pages().stale_pages()
    assert not stale, f"{stale[0]} is out of date: run python scripts/reference_pages.py"


def test_reference_pages_name_every_setting_and_command():
    import dataclasses

    from pipeline.cli import build_parser
    from pipeline.config import Params

    pages = _reference_pages().render()

    def keys(cfg, prefix=""):  # every key, a section's keys dotted (finetune's data.train, training.lr)
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            yield from keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]

    for section in dataclasses.fields(Params):
        value = getattr(Params(), section.name)
        if dataclasses.is_dataclass(value):
            for key in keys(value):
                assert f"| `{key}` |" in pages["config"], (section.name, key)
    assert "| `training.lr` |" in pages["config"]
    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices
    for name in commands:
        assert f"## `elmo {name}`" in pages["cli"]


def test_readme_is_short_and_has_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make test" in readme and "make repro" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_user_docs_speak_of_the_product_only():
    found = [
        f"{path.relative_to(REPO)}:{i}: {m.group(0)}"
        for path in DOC_FILES
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for m in [HISTORY.search(line)]
        if m
    ]
    assert not found, "development history in user docs:\n" + "\n".join(found)
    assert not [p for p in DOC_FILES if "../shared" in p.read_text(encoding="utf-8")]


def test_the_history_check_finds_history():
    assert HISTORY.search("as measured in this session") and HISTORY.search("see issue 11")
    assert not HISTORY.search("the encoder embeds each sentence")
