"""Point-in-time features, one definition for training and serving.

``registry`` (every feature declared once, the feature-set version, the model's input matrix),
``build`` (the Spark job: features per delivery day and the online state), ``validate`` (Great
Expectations on a day's features), ``online`` (the same features for one new transaction, from the
state: the serving path).
"""
