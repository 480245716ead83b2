"""Evaluation beyond accuracy, shared by training, the promotion gate and monitoring.

* :mod:`~jobs.evaluation.metrics`: ranking metrics, Card Precision@k, the cost view, calibration,
  slices and the temporal trend of one scored frame, as a JSON-able report (:func:`evaluate`);
* :mod:`~jobs.evaluation.robustness`: invariance and directional tests;
* :mod:`~jobs.evaluation.baseline`: the logistic-regression floor;
* :mod:`~jobs.evaluation.report`: the report as JSON, HTML and plots.
"""
