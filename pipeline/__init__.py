"""elmo-pipeline: ELMo-style pretraining and finetuning (word2vec, char-CNN biLM, export, tasks)."""

from pipeline.errors import PipelineError

__version__ = "0.1.0"
__all__ = ["Encoder", "PipelineError", "TaskModel", "__version__"]


def __getattr__(name):
    # `from pipeline import Encoder, TaskModel` without importing torch for every `import pipeline`
    if name == "Encoder":
        from pipeline.encoder import Encoder

        return Encoder
    if name == "TaskModel":
        from pipeline.tasks.model import TaskModel

        return TaskModel
    raise AttributeError(name)
