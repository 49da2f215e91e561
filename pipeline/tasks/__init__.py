"""Downstream tasks on the biLM: labelled data, the task types, input features, heads, the task
models and their directories, metrics.

    examples.py    labelled files → TaskData (examples and targets), tag sets, unknown-label checks
    kinds.py       the task types (TagTask, NerTask, ClassifyTask): shapes, reading, labels, head, decoding, scores
    job.py         FinetuneJob (one run's settings, outputs, inputs), TaskSplits and read_splits
    scalar_mix.py  ScalarMix: gamma * Σ softmax(s)_j h_j over the biLM's L+1 layers
    features.py    per-token inputs [word ; casing ; chars ; ELMo mix], frozen-biLM layers kept per sentence
    crf.py         linear-chain CRF and the tag scheme's transition constraints
    heads.py       TaskBiLSTM, Tagger (BiLSTM-CRF), Classifier (BiLSTM + pooling)
    metrics.py     entity-level NER scores (seqeval), token tagging scores, classification scores (scikit-learn)
    base.py        TaskModel: what every task model offers (predict, scores, records, save) + the saved format
    bilstm.py      BiLSTMTaskModel (model: bilstm): features + the task's head
    linear.py      LinearModel (model: tfidf | linear): TF-IDF (+ pooled ELMo) + logistic regression
    ensemble.py    EnsembleClassifier (model: ensemble): the mean of its members' probabilities
    majority.py    MajorityTagger (model: majority): each word's most frequent training tag
    models.py      MODEL_TYPES, the model-type registry; load_task_model (any saved task model)
"""
