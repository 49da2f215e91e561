"""Training loops on accelerate: pretraining (PretrainRun), finetuning, checkpoints, LM evaluation, the launcher."""
