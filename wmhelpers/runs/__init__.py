"""Runs: the machinery that names a model kind. Outside `models/`, only this folder imports the
model classes.

    checkpoints.py   save and load by kind (MODEL_REGISTRY), with every mismatch named; load_or_train
    train_seeds.py   the `seeds` command: train every (seed, model), evaluate, write the seeds file
    benchmark.py     step times, KV cache vs recompute, the attention-cost sweep, on one device
"""
