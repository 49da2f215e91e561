"""Loading any saved task model: the model type recorded in its directory picks the class.

load_task_model("models/sentiment").predict(["a fine film"])
"""

from __future__ import annotations

from pathlib import Path

from pipeline.tasks.base import TaskModel, read_saved
from pipeline.tasks.bilstm import BiLSTMTaskModel
from pipeline.tasks.ensemble import EnsembleClassifier
from pipeline.tasks.linear import LinearClassifier


def load_task_model(directory: str | Path) -> TaskModel:
    """The task model saved in ``directory`` (by ``elmo finetune`` or ``TaskModel.save``)."""
    d = Path(directory)
    config, cfg, labels = read_saved(d)
    if cfg.model == "ensemble":
        return EnsembleClassifier.load(d, config, cfg, load_member=load_task_model)
    if cfg.model in ("tfidf", "linear"):
        return LinearClassifier.load(d, config, cfg, labels)
    return BiLSTMTaskModel.load(d, config, cfg, labels)
