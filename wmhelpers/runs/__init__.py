"""Runs: what names a model kind (checkpoints, train_seeds, benchmark); outside `models/`, only
this folder imports the model classes.
"""
