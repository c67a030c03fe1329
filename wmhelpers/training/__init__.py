"""Training: the one loop (loop.py) and the one gradient step (step.py) every world model goes
through; neither reaches a backbone module.
"""
