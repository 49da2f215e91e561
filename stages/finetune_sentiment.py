"""DVC stage `finetune_sentiment`: the sentence classifier of the `finetune_sentiment` params
section (same code as stages/finetune_ner.py)."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
from finetune_ner import main

from pipeline.errors import run_main

if __name__ == "__main__":
    run_main(lambda argv=None: main(argv, section="finetune_sentiment"))
