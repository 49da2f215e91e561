"""Downstream tasks on the biLM: input features (word2vec / ELMo scalar mix), the task BiLSTM heads,
the CRF, the task model and its directory, labelled data and metrics.

    data.py        labelled files → TaskData, label sets, unknown-label checks
    scalar_mix.py  ScalarMix: gamma * Σ softmax(s)_j h_j over the biLM's L+1 layers
    features.py    per-token inputs [word2vec ; ELMo mix], frozen-biLM layers kept per sentence
    crf.py         linear-chain CRF and the tag scheme's transition constraints
    heads.py       TaskBiLSTM, Tagger (BiLSTM-CRF), Classifier (BiLSTM + pooling)
    model.py       TaskModel: features + head, predict, scores, save/load of its directory
    metrics.py     entity-level NER scores (seqeval) and classification scores (scikit-learn)
"""
