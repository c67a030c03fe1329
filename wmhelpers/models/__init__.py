"""The world models and their parts, read in this order: latent.py, nets.py, vae.py, world_model.py,
masking.py, transformer.py, rssm.py. Nothing here knows how a model is trained or shown.
`MODEL_REGISTRY` maps a checkpoint's `kind` to its class.
"""

from .rssm import RSSMWorldModel
from .transformer import TransformerWorldModel

MODEL_REGISTRY = {cls.kind: cls for cls in (RSSMWorldModel, TransformerWorldModel)}
