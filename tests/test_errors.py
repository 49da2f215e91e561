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
