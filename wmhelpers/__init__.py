"""wmhelpers: everything the P04 notebook needs, tested with plain pytest.

    import wmhelpers as wm
    cfg = wm.ExperimentConfig.from_env()
    data = wm.load_or_collect(cfg); train, val = data.split(cfg)
"""

from .config import ExperimentConfig
from .data import EpisodeDataset, load_or_collect
from .latent import categorical_kl, kl_losses, mode_one_hot, straight_through_sample, unimix_logits
from .nets import ConvDecoder, ConvEncoder
from .rssm import RSSMWorldModel
from .transformer import TransformerDynamics, TransformerWorldModel
from .vae import CategoricalVAE
from .world_model import MODEL_REGISTRY, WorldModel

__all__ = [
    "ExperimentConfig", "EpisodeDataset", "load_or_collect", "categorical_kl", "kl_losses", "mode_one_hot",
    "straight_through_sample", "unimix_logits", "ConvDecoder", "ConvEncoder", "RSSMWorldModel",
    "TransformerDynamics", "TransformerWorldModel", "CategoricalVAE", "MODEL_REGISTRY", "WorldModel",
]
