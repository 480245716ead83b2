"""The shared simulated history (``history``, ``marts``, ``feature_history``) lives in tests/conftest.py."""
