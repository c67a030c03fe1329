"""Evaluation: how trained models are scored and compared, one module per concept (see the README's
layout). Like the trainer, it only calls the world-model interface: it reaches no backbone module."""
