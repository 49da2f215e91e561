"""Kept for the import path the README showed before the tasks package: use :mod:`pipeline.tasks`."""

from pipeline.tasks.crf import crf_constraints
from pipeline.tasks.data import TaskData, check_labels, label_set, read_task_data, tokenizer_for
from pipeline.tasks.model import METRIC, TaskModel, load_word2vec_lookup, predictions_as_records

__all__ = [
    "METRIC",
    "TaskData",
    "TaskModel",
    "check_labels",
    "crf_constraints",
    "label_set",
    "load_word2vec_lookup",
    "predictions_as_records",
    "read_task_data",
    "tokenizer_for",
]
