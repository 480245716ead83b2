"""Scoring with the champion: batch scoring of a day's transactions and the investigators' review queue.

Empty for now: the serving issue fills it (``python -m jobs.scoring.<module> --date D``). It will import
``features`` and ``release`` (to load the champion), never ``training``.
"""
