"""One run per output: the lock beside an output (pipeline/io.py: output_lock)."""

import os
import subprocess
import sys

import pytest

from pipeline.errors import PipelineError
from pipeline.io import lock_file, output_lock

from helpers import elmo

SAMPLES = __import__("conftest").REPO / "data" / "samples"


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_is_beside_the_output_and_gone_after_the_run(tmp_path):
    out = tmp_path / "model"
    with output_lock(out):
        assert lock_file(out) == tmp_path / ".model.lock"
        assert lock_file(out).read_text().split()[0] == str(os.getpid())
        with output_lock(out):  # the same process again (nested library calls)
            pass
        assert lock_file(out).exists()
    assert not lock_file(out).exists() and not out.exists()


def test_a_live_holder_is_refused_and_a_dead_one_is_taken_over(tmp_path):
    out = tmp_path / "model"
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock_file(out).write_text(f"{holder.pid}\n")
        with pytest.raises(PipelineError, match=rf"another run is writing it \(PID {holder.pid}; lock "):
            with output_lock(out):
                pass
        assert lock_file(out).read_text() == f"{holder.pid}\n"  # not ours: left alone
    finally:
        holder.kill()
        holder.wait()
    lock_file(out).write_text(f"{dead_pid()}\n")
    with output_lock(out):
        assert lock_file(out).read_text().split()[0] == str(os.getpid())
    assert not lock_file(out).exists()


def test_a_second_finetune_on_the_same_output_is_refused_with_one_line(trained, tmp_path):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock_file(tmp_path / "m").write_text(f"{holder.pid}\n")
        p = elmo(
            "finetune",
            "--task",
            "ner",
            "--train",
            str(SAMPLES / "ner" / "train.conll"),
            "--dev",
            str(SAMPLES / "ner" / "dev.conll"),
            "--encoder",
            str(trained / "enc"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m"),
            cwd=tmp_path,
        )
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert (
        p.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {tmp_path / 'm'}: another run is writing it (PID {holder.pid}")
    )
    assert not (tmp_path / "m").exists()
