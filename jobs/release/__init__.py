"""From challenger to champion, and back: what may serve is decided here.

``registry`` (register, promote, roll back, load the booster behind an alias, status), ``gate``
(the challenger against the champion on the same rows, or the floors), ``model_card``,
``approval`` (the human decision, the outcome of a training run), ``decisions`` (the names of gate
decisions, approval options and outcomes). Imports features and evaluation, never training.
"""
