"""Governance: the answers an auditor or a model owner asks for, across every stage below.

``explain`` (which model decided a payment, trained on what, approved by whom) and ``models_page``
(the Models page of the Airflow UI). The top layer: it reads the registry (release), the scores
(scoring) and the checks (monitoring), and nothing below imports it.

    python -m jobs.governance explain-decision <transaction_id>
    python -m jobs.governance models
"""
