"""docs/benchmarks.md cannot drift from results/: scripts/benchmarks_page.py regenerates its tables."""

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "benchmarks_page.py"
PAGE = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "results"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmarks_page", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page_script():
    return load_script()


def outside_markers(module, text: str) -> list[str]:
    """The page's text with the generated blocks' bodies cut out: what the script must not touch."""
    parts, last = [], 0
    for _, start, end in module.blocks_of(text):
        parts.append(text[last:start])
        last = end
    return parts + [text[last:]]


def test_the_committed_page_is_up_to_date(page_script):
    assert page_script.check(PAGE, RESULTS) is None


def test_the_page_has_every_block_and_one_title(page_script):
    text = PAGE.read_text(encoding="utf-8")
    assert {name for name, _, _ in page_script.blocks_of(text)} == set(page_script.BLOCKS)
    assert text.startswith("# Benchmarks\n")
    assert len(re.findall(r"^# ", text, flags=re.M)) == 1


def test_an_edited_number_in_a_generated_block_fails_the_check(page_script, tmp_path):
    page = tmp_path / "benchmarks.md"
    text = PAGE.read_text(encoding="utf-8")
    # the CoNLL-2003 frozen-biLM row of the results table, as results/final.json gives it
    row = next(line for line in text.splitlines() if line.startswith("| CoNLL-2003 NER | ours + ELMo (frozen biLM) |"))
    assert "86.24 ± 0.21" in row
    page.write_text(text.replace(row, row.replace("86.24 ± 0.21", "86.42 ± 0.21")), encoding="utf-8")

    problem = page_script.check(page, RESULTS)

    assert problem is not None and "'final'" in problem and "results/final.json" in problem
    assert "\n" not in problem
    assert page_script.main(["--check", "--page", str(page), "--results", str(RESULTS)]) == 1
    assert page_script.main(["--check", "--page", str(PAGE), "--results", str(RESULTS)]) == 0


def test_a_changed_results_file_fails_the_check_on_its_block(page_script, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    path = results / "finetune_long.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"seconds": 230.9', '"seconds": 231.9'), encoding="utf-8")

    problem = page_script.check(PAGE, results)

    assert problem is not None and "'weak_inputs_long'" in problem


def test_the_rewrite_leaves_text_outside_the_markers_byte_identical(page_script, tmp_path):
    page = tmp_path / "benchmarks.md"
    original = PAGE.read_text(encoding="utf-8")
    # every block emptied or damaged: the rewrite restores them and nothing else changes
    damaged, last = [], 0
    for i, (_, start, end) in enumerate(page_script.blocks_of(original)):
        damaged += [original[last:start], "" if i % 2 else "\n| stale | table |\n|---|---|\n| 1 | 2 |\n\n"]
        last = end
    damaged.append(original[last:])
    page.write_bytes("".join(damaged).encode("utf-8"))
    assert page_script.check(page, RESULTS) is not None

    assert page_script.rewrite(page, RESULTS) is True

    rewritten = page.read_bytes().decode("utf-8")
    assert outside_markers(page_script, rewritten) == outside_markers(page_script, original)
    assert rewritten == original
    assert page_script.check(page, RESULTS) is None
    assert page_script.rewrite(page, RESULTS) is False


def test_markers_that_do_not_pair_are_refused_in_one_line(page_script, tmp_path):
    page = tmp_path / "benchmarks.md"
    text = PAGE.read_text(encoding="utf-8")
    page.write_text(text.replace("<!-- end: transfer -->\n", "", 1), encoding="utf-8")
    problem = page_script.check(page, RESULTS)
    assert problem is not None and "transfer" in problem and "\n" not in problem

    page.write_text(text.replace("<!-- generated: tokenizers -->", "<!-- generated: tokenisers -->"), encoding="utf-8")
    problem = page_script.check(page, RESULTS)
    assert problem is not None and "unknown block 'tokenisers'" in problem
