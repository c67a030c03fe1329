"""wmhelpers: everything the P04 notebook needs, tested with plain pytest.

    import wmhelpers as wm
    cfg = wm.ExperimentConfig.from_env()              # WM_SMOKE=1 -> tiny budgets
    data = wm.load_or_collect(cfg); train, val = data.split(cfg)
    tf = wm.TransformerWorldModel.from_config(cfg, num_actions=data.num_actions)
    hist = wm.train_world_model(tf, train, val, cfg)
    res = wm.evaluate_rollouts({"RSSM": rssm, "Transformer": tf}, val, cfg)
"""

from . import animate, device, notebook, one_token, plots, seeds, teach, verdict, wallclock
from .benchmark import attention_cost_sweep, kv_cache_speed, run_benchmark
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .data import EpisodeDataset, load_or_collect
from .evaluate import (
    PSNR_CAP_DB,
    capped_counts,
    comparison_facts,
    evaluate_rollouts,
    format_table,
    headline_table,
    paired_margin,
    print_facts,
    psnr,
)
from .latent import categorical_kl, kl_losses, mode_one_hot, straight_through_sample, unimix_logits
from .nets import ConvDecoder, ConvEncoder
from .results import load_results, save_results
from .rssm import RSSMWorldModel
from .teach import show_source
from .train import load_or_train, next_frame_mse, train_world_model
from .transformer import TransformerDynamics, TransformerWorldModel, imagination_backend
from .vae import CategoricalVAE
from .world_model import MODEL_REGISTRY, WorldModel

__all__ = [
    "kv_cache_speed", "imagination_backend",
    "PSNR_CAP_DB", "capped_counts",
    "device", "notebook", "seeds", "verdict", "wallclock",
    "animate", "one_token", "teach", "show_source",
    "plots", "attention_cost_sweep", "run_benchmark", "CheckpointError", "load_checkpoint", "save_checkpoint",
    "ExperimentConfig", "EpisodeDataset", "load_or_collect", "evaluate_rollouts", "headline_table",
    "paired_margin", "psnr", "categorical_kl", "kl_losses", "mode_one_hot", "straight_through_sample",
    "unimix_logits", "ConvDecoder", "ConvEncoder", "load_results", "save_results", "RSSMWorldModel",
    "next_frame_mse", "train_world_model", "TransformerDynamics", "TransformerWorldModel", "CategoricalVAE",
    "MODEL_REGISTRY", "WorldModel", "comparison_facts", "format_table", "print_facts", "load_or_train",
]
