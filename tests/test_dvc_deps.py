"""dvc.yaml deps that cannot drift: every `pipeline/` file a stage imports is one of its deps.

Each stage's `cmd` from dvc.yaml is run on tiny data in a temporary directory (its script directly
with this interpreter, not through accelerate), and the `pipeline.*` modules loaded by the end of
the run are compared with the stage's `deps`. Many imports sit inside functions, so only a real
run shows them. Nothing here names a module: moving code around needs only dvc.yaml updated.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from helpers import env, make_corpus

# Runs a stage script as `python stages/x.py` would (its folder first on sys.path) and, at exit,
# writes the names of the loaded `pipeline` modules and the files of those loaded from stages/.
WRAPPER = """
import atexit, json, os, runpy, sys
out, script, *argv = sys.argv[1:]
stages = os.path.dirname(os.path.abspath(script))

def dump():
    mods = list(sys.modules.items())
    names = sorted(m for m, _ in mods if m == "pipeline" or m.startswith("pipeline."))
    files = sorted(f for _, mod in mods if (f := getattr(mod, "__file__", None)) and os.path.dirname(f) == stages)
    with open(out, "w") as f:
        json.dump({"pipeline": names, "stages": files}, f)

atexit.register(dump)
sys.argv = [script, *argv]
sys.path[0] = stages
runpy.run_path(script, run_name="__main__")
"""

# Tiny settings: the tiny biLM preset; word2vec and the task models a few seconds each.
FINETUNE = {"head": dict(hidden=16), "training": dict(epochs=1, batch_size=32)}
PARAMS = {
    "presets": ["tiny"],
    "prepare": dict(corpus="data/raw/corpus.txt", valid_fraction=0.1, test_fraction=0.1, min_count=1),
    "word2vec": dict(vector_size=8, epochs=1),
    "pretrain": dict(max_steps=4, eval_every=4, checkpoint_every=4),
    "finetune_ner": {
        **FINETUNE,
        "data": {k: str(REPO / f"data/samples/ner/{k}.conll") for k in ("train", "dev", "test")},
    },
    "finetune_sentiment": {
        **FINETUNE,
        "data": {k: str(REPO / f"data/samples/sentiment/{k}.tsv") for k in ("train", "dev", "test")},
    },
}


def stage_argv(cmd: str) -> list[str]:
    """A dvc.yaml ``cmd`` as [script, *args], the script resolved in the repository;
    ``python -m pipeline.train.launch stages/x.py ...`` runs ``stages/x.py`` directly."""
    argv = shlex.split(cmd)
    assert argv[0] == "python", f"unexpected stage command: {cmd}"
    argv = argv[1:]
    if argv[:2] == ["-m", "pipeline.train.launch"]:
        argv = argv[2:]
    return [str(REPO / argv[0]), *argv[1:]]


def module_file(name: str) -> str:
    """``pipeline.x.y`` → ``pipeline/x/y.py``, or ``pipeline/x/y/__init__.py`` for a package."""
    path = Path(*name.split("."))
    return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"


def covered(file: str, deps: list[str]) -> bool:
    """A file dep covers that file, a directory dep everything under it."""
    return any(file == d or file.startswith(d + "/") for d in (str(dep).rstrip("/") for dep in deps))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, list[str]]:
    """Each dvc.yaml stage, in file order, run in one temporary directory (each stage reads the
    outputs of the ones before it) → the repository files it imported (pipeline/ and stages/)."""
    work = tmp_path_factory.mktemp("dvc_deps")
    (work / "data" / "raw").mkdir(parents=True)
    (work / "data" / "raw" / "corpus.txt").write_text(make_corpus(200))
    (work / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    run_env = env()
    run_env["PYTHONPATH"] = str(REPO)  # the repository's `pipeline`, whatever is installed
    result = {}
    for stage, body in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        out = work / f"{stage}.modules.json"
        argv = stage_argv(body["cmd"])
        p = subprocess.run(
            [sys.executable, "-c", WRAPPER, str(out), *argv],
            cwd=work,
            env=run_env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, f"stage {stage} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        loaded = json.loads(out.read_text())
        files = [module_file(m) for m in loaded["pipeline"]]
        files += [str(Path(f).relative_to(REPO)) for f in [argv[0], *loaded["stages"]]]
        result[stage] = sorted(set(files))
    return result


def test_every_stage_lists_the_code_it_imports_as_deps(imported):
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, files in imported.items():
        assert "pipeline/__init__.py" in files, f"{stage}: no pipeline module measured: {files}"
    missing = {
        stage: [f for f in files if not covered(f, stages[stage].get("deps", []))] for stage, files in imported.items()
    }
    missing = {stage: files for stage, files in missing.items() if files}
    assert not missing, "dvc.yaml: stages import files missing from their deps:\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in missing.items()
    )


def test_every_code_dep_exists():
    """A moved or deleted module must leave dvc.yaml too (DVC would stop on a missing dep)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stale = {
        name: [
            d
            for d in stage.get("deps", [])
            if str(d).startswith(("pipeline", "stages")) and not (REPO / str(d)).exists()
        ]
        for name, stage in stages.items()
    }
    stale = {name: deps for name, deps in stale.items() if deps}
    assert not stale, f"dvc.yaml deps that do not exist: {stale}"
