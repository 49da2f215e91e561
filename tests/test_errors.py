"""Entry points: one-line errors, and signals that stop a run cleanly wherever they arrive."""

import subprocess
import sys
import time

from conftest import REPO

# A SIGTERM that arrives while Python runs a finalizer raises there, where the exception can only
# be ignored; run_main must still stop the program (exit 143) instead of letting it go on.
SWALLOWED = """
import os, signal, sys, time
from pipeline.errors import run_main

class SignalInFinalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler runs here, inside __del__

def main(argv):
    SignalInFinalizer()  # collected at once: the signal is raised inside __del__
    for _ in range(100):
        time.sleep(0.1)  # 10 s unless the signal is delivered again
    return 0

run_main(main, [])
"""


def test_a_signal_swallowed_by_a_finalizer_still_stops_the_run():
    start = time.time()
    p = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 143, p.stderr
    assert p.stderr.strip() == "terminated (SIGTERM)" and time.time() - start < 8


def test_out_of_range_option_values_are_usage_errors(tmp_path):
    """Exit 2 with argparse's usage line, like any other usage error (not 1, which means a failure)."""
    cases = [
        ["embed", "x.txt", "--encoder", "e", "--out", "o.h5", "--batch-tokens", "2"],
        ["finetune", "--out", "m", "--epochs", "0"],
        ["finetune", "--out", "m", "--lr", "-1"],
        ["finetune", "--out", "m", "--lr", "nan"],
        ["generate", "--encoder", "e", "--top-k", "0"],
    ]
    for args in cases:
        p = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO)},
        )
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.splitlines()[0].startswith("usage: elmo") and "Traceback" not in p.stderr
        assert ("must be at least" in p.stderr) or ("must be above 0" in p.stderr), p.stderr


def test_a_word2vec_directory_is_not_called_missing(tmp_path):
    from pipeline.errors import PipelineError
    from pipeline.word2vec import load_vectors

    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "vectors.bin").write_bytes(b"")
    try:
        load_vectors(tmp_path / "w2v")
    except PipelineError as e:
        assert (
            str(e) == f"{tmp_path / 'w2v'}: is a directory, not a vector file "
            "(the word2vec stage writes vectors.bin inside it)"
        )
    else:
        raise AssertionError("no error")


def test_ctrl_c_swallowed_by_a_finalizer_still_stops_the_run(tmp_path):
    """A KeyboardInterrupt that lands in a __del__ (or weakref callback) cannot propagate; the run
    must stop anyway instead of training on (it is sent again)."""
    script = tmp_path / "run.py"
    script.write_text(
        "import time\n"
        "from pipeline.errors import run_main\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt\n"
        "def main(argv):\n"
        "    Finalized()\n"
        "    time.sleep(30)\n"
        "    return 0\n"
        "run_main(main)\n"
    )
    p = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=20)
    assert p.returncode == 130 and p.stderr.strip().splitlines()[-1] == "interrupted", p.stderr
