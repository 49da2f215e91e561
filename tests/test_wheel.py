"""The package works installed from its wheel, outside the repository: presets and the accelerate
config are package data, and `elmo` runs a preset and a tiny finetune from another directory."""

import json
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

from helpers import REPO

SAMPLES = REPO / "data" / "samples" / "sentiment"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the wheel installed (not editable). Its third-party packages
    come from this environment's site-packages through a .pth line (no download, no second torch);
    this environment's editable hook is not read from there, so `import pipeline` finds the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(REPO / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp.glob("elmo_pipeline-*.whl")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    ours = site.getsitepackages()[0] if site.getsitepackages() else sysconfig.get_paths()["purelib"]
    (tmp / "venv" / purelib.split(str(env_dir) + "/", 1)[1] / "deps.pth").write_text(ours + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir


def run(env_dir, *args, cwd):
    return subprocess.run([str(env_dir / "bin" / "elmo"), *args], capture_output=True, text=True, cwd=cwd)


def test_the_wheel_holds_the_presets_and_runs_them_outside_the_repository(installed, tmp_path):
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert str(installed) in where and str(REPO) not in where  # the wheel, not this checkout
    (tmp_path / "params.yaml").write_text("presets: [tiny]\n")
    p = run(installed, "config", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    config = json.loads(p.stdout)
    assert config["presets"] == ["tiny"] and config["model"]["projection_dim"] == 16  # read from the wheel


def test_the_wheel_finetunes_from_another_directory(installed, tmp_path):
    out = tmp_path / "clf"
    args = ["finetune", "--task", "classify", "--model", "tfidf", "--out", str(out), "--metrics", "m.json", "-q"]
    p = run(installed, *args, "--train", str(SAMPLES / "train.tsv"), "--dev", str(SAMPLES / "dev.tsv"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "m.json").read_text())["dev"]["accuracy"] > 0.5
    assert "elmo finetune" in (out / "README.md").read_text()  # the model card records the command


def test_the_wheel_compiles_the_lstm_cell_from_its_own_source(installed, tmp_path):
    """lstmp_cell.c ships in the wheel and is compiled from there (into the cache directory given)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    code = "from pipeline.bilm.native import SOURCE, cell_kernel; print(SOURCE); print(cell_kernel() is not None)"
    env = {"PATH": "/usr/bin:/bin", "ELMO_KERNEL_CACHE": str(tmp_path / "cache")}
    p = subprocess.run(
        [str(installed / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    source, compiled = p.stdout.split()
    assert str(installed) in source and compiled == "True", p.stderr
    assert len(list((tmp_path / "cache").glob("lstmp_cell-*.so"))) == 1
