"""Chapter pipelines built on PyTorch and Keras (tested in ``tests/pipelines/``).

Each pipeline follows one API shape: ``build_*`` returns a model, ``train_*`` fits it and
returns a dict of per-epoch metric lists, ``evaluate_*`` returns a dict of metrics.
"""
