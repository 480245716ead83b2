"""Watching the champion: data and prediction drift, delayed-label performance, health, alerts, retraining requests.

Empty for now: the monitoring issue fills it, one module per check, each runnable for a date with
``python -m jobs.monitoring.<module> --date D``.
"""
