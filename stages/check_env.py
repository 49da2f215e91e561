"""Imported first by every stage: a Python without the project installed (e.g. a `dvc` from another
environment running the system `python`) stops with one line instead of a ModuleNotFoundError."""

import importlib.util
import sys

if importlib.util.find_spec("pipeline") is None or importlib.util.find_spec("torch") is None:
    print(
        f"error: {sys.executable} does not have elmo-pipeline installed; run the stages from the project's "
        f"environment: `source .venv/bin/activate` (made by `make`), or `make repro`",
        file=sys.stderr,
    )
    sys.exit(1)
