"""The world models and their parts: the lesson. Read top to bottom, in this order:

    latent.py        the categorical latent: unimix, straight-through sample, mode, KL with free bits
    nets.py          conv encoder/decoder and MLP heads (shared by both models)
    vae.py           CategoricalVAE (Section 1): the observation model of both world models
    world_model.py   the interface both models implement, and the one loss
    masking.py       the causal sliding-window attention mask
    transformer.py   causal Transformer with RoPE and a static-buffer KV cache (Section 2)
    rssm.py          the P03 baseline: GRU path, prior, residual posterior

Nothing here knows how a model is trained, evaluated or shown: this folder imports only the
config, the device helpers and `cuda_graphs` of the package (and torch). `MODEL_REGISTRY` maps a checkpoint's
`kind` to its class, for the checkpoint loader.
"""

from .rssm import RSSMWorldModel
from .transformer import TransformerWorldModel

MODEL_REGISTRY = {cls.kind: cls for cls in (RSSMWorldModel, TransformerWorldModel)}
