"""The fraud pipeline's logic, one package per stage; the DAGs in ``dags/`` only call into it.

==================  =====================================================================================
package             owns
==================  =====================================================================================
``config``          the one configuration module: settings grouped by concern, read from the environment once
``platform``        shared plumbing: Spark session, lakehouse tables, the ops log, MLflow names and client,
                    the dbt runner, Great Expectations, logging
``data``            landing files to bronze: simulator, validated ingestion, reference snapshots, backfill,
                    the landing contract's expectation suites
``features``        the feature registry, the point-in-time Spark job, its validation, the online computation
``evaluation``      evaluation beyond accuracy: metrics, Card Precision@k, cost, slices, robustness, reports
``training``        the training set, Ray Tune, the final fit, the evaluation stage, the stage context
``release``         the registry (aliases, promotion, rollback), the gate, the model card, approvals
``scoring``         batch scoring and the investigators' queue (to come)
``monitoring``      drift, delayed-label performance, alerts, retraining requests (to come)
==================  =====================================================================================

Every module with a command line runs as ``python -m jobs.<package>.<module> --help``. Imports go
one way, down this table's dependency order (``tests/code/test_layout.py`` enforces it): platform
knows no stage; release never imports training; serving will import features and release only.
"""
