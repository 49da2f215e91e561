"""elmo-pipeline: ELMo-style pretraining and finetuning (word2vec, char-CNN biLM, export, tasks)."""
from pipeline.errors import PipelineError

__version__ = "0.1.0"
__all__ = ["PipelineError", "__version__"]
