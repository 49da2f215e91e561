"""Reading a finetuning run's labelled files (pipeline/train/finetune.py read_splits)."""

import pytest

from pipeline.errors import PipelineError
from pipeline.tasks.job import read_splits

from helpers import finetune_cfg


def test_an_empty_training_file_is_named_before_the_dev_file_is_read(write):
    for task in ("ner", "classify"):
        train = write(f"empty-{task}.tsv", "label\tsentence\n" if task == "classify" else "")
        cfg = finetune_cfg(task=task, train=str(train), dev=str(write("dev.csv", "not a labelled file")))
        with pytest.raises(PipelineError, match=rf"empty-{task}\.tsv: no labelled examples"):
            read_splits(cfg, str.split)
