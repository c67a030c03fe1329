"""Training: the one loop and the one gradient step every world model goes through.

    step.py   TrainStep: loss, backward, clipping, Adam, with no host sync; on CUDA a replayed CUDA graph
    loop.py   train_world_model: seeded batches, validation loss and the neutral next-frame metric, history

The trainer never asks which model it holds: it reaches no backbone module (transformer.py,
rssm.py). Loading or training a model by its kind lives in `wmhelpers.runs`.
"""
