"""Training a challenger: the data it sees, the search, the final fit and its evaluation.

``dataset`` (pinned Delta versions, out-of-time windows, prequential folds, labels known at the
cutoff), ``tune`` (Ray Tune with Optuna and ASHA over LightGBM), ``train`` (the MLflow run with its
lineage, the final fit, every stage in a row), ``evaluate`` (the evaluation stage), ``context``
(the state passed between stages, config hash, git commit). Registration and promotion are
:mod:`jobs.release`'s.
"""
