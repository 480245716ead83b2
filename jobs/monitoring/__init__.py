"""Watching the champion: drift, delayed-label performance, numerical health, alerts, retraining requests.

``checks`` runs the daily checks (``python -m jobs.monitoring.checks --date D``) into
``monitoring.checks``; ``alerts`` turns the failed ones into ``monitoring.alerts`` and retraining
reasons; ``report`` writes the day's HTML report (Evidently's drift report and the trends);
``reference`` reads a version's training reference back from MLflow. No JVM anywhere.
"""
