"""elmo-pipeline: ELMo-style pretraining and finetuning (word2vec, char-CNN biLM, export, tasks)."""
from pipeline.errors import PipelineError

__version__ = "0.1.0"
__all__ = ["Encoder", "PipelineError", "__version__"]


def __getattr__(name):
    # `from pipeline import Encoder` without importing torch for every `import pipeline`
    if name == "Encoder":
        from pipeline.export import Encoder

        return Encoder
    raise AttributeError(name)
