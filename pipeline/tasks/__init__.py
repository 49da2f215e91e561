"""Downstream tasks on the biLM: labelled data, the task types, input features, heads, the task
models and their directories, metrics.

    examples.py    labelled files → TaskData (examples and targets), tag sets, unknown-label checks
    kinds.py       the task types (NerTask, ClassifyTask): reading, labels, head, loss, decoding, scores
    scalar_mix.py  ScalarMix: gamma * Σ softmax(s)_j h_j over the biLM's L+1 layers
    features.py    per-token inputs [word ; casing ; chars ; ELMo mix], frozen-biLM layers kept per sentence
    crf.py         linear-chain CRF and the tag scheme's transition constraints
    heads.py       TaskBiLSTM, Tagger (BiLSTM-CRF), Classifier (BiLSTM + pooling)
    metrics.py     entity-level NER scores (seqeval) and classification scores (scikit-learn)
    base.py        TaskModel: what every task model offers (predict, scores, records, save) + the saved format
    bilstm.py      BiLSTMTaskModel (model: bilstm): features + the task's head
    linear.py      LinearClassifier (model: tfidf | linear): TF-IDF (+ pooled ELMo) + logistic regression
    ensemble.py    EnsembleClassifier (model: ensemble): the mean of its members' probabilities
    load.py        load_task_model: any saved task model, by the model type its directory records
"""
