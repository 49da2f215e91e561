"""elmo-pipeline: ELMo-style pretraining and finetuning (word2vec, char-CNN biLM, export, tasks)."""

from pipeline.errors import PipelineError

__version__ = "0.1.0"
__all__ = [
    "Encoder",
    "FinetuneConfig",
    "PipelineError",
    "TaskModel",
    "__version__",
    "finetune",
    "load_finetune_config",
    "load_task_model",
]


def __getattr__(name):
    # `from pipeline import Encoder, load_task_model` without importing torch for every `import pipeline`
    if name == "Encoder":
        from pipeline.encoder import Encoder

        return Encoder
    if name == "TaskModel":
        from pipeline.tasks.base import TaskModel

        return TaskModel
    if name == "load_task_model":
        from pipeline.tasks.models import load_task_model

        return load_task_model
    if name == "finetune":
        from pipeline.train.finetune import finetune

        return finetune
    if name in ("FinetuneConfig", "load_finetune_config"):
        from pipeline import config

        return getattr(config, name)
    raise AttributeError(name)
