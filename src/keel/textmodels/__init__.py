"""Transformer strategies for one text column: frozen sentence embeddings with a linear head,
and an encoder fine-tuned with LoRA (or fully) with a classification head.

Both are scikit-learn estimators, so search, refit, scoring, tracking (skops) and the
promotion gate treat them like any other family; ``keel.exporting.transformer`` turns them
into one ONNX graph plus the tokenizer that feeds it. Everything here needs the ``text``
extra (torch, transformers, peft, and the packaged all-MiniLM-L6-v2); importing this package
does not.
"""
