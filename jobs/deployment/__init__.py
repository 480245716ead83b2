"""Deployment of model versions to the running service: the ``deploy_model`` DAG's stages.

Above ``release`` (the registry, its serving state and the audit log) and ``scoring`` (loading a
version, the prediction log): a rollout changes the registry and judges the service by its log.
"""
