"""The biLM: token encoder, sequence bodies, the clipped-LSTM kernel, softmax heads, and the model
that joins them (:mod:`pipeline.bilm.model`)."""
