"""wmhelpers: everything the P04 notebook needs, tested with plain pytest.

    import wmhelpers as wm
    cfg = wm.ExperimentConfig.from_env(); data = wm.load_or_collect(cfg); train, val = data.split(cfg)
    tf = wm.TransformerWorldModel.from_config(cfg, num_actions=data.num_actions)
    hist = wm.train_world_model(tf, train, val, cfg)
    res = wm.evaluate_rollouts({"RSSM": rssm, "Transformer": tf}, val, cfg)

Folders (README "Layout"): models/, training/, evaluation/, runs/ (what names a model kind),
notebook_tools/. This file re-exports the public API and the modules the notebook reads by name.
"""

from . import device, notebook_runner
from . import notebook_runner as notebook  # the notebook's last cell reads wm.notebook.deliverables_checklist
from .config import ExperimentConfig
from .cuda_graphs import imagination_backend
from .data import EpisodeDataset, load_or_collect
from .evaluation import gaps, markov, memory_verdict, reward, rollouts, seeds, stats, tables, verdict, wallclock
from .evaluation.psnr import PSNR_CAP_DB, psnr
from .evaluation.results import load_results, save_results
from .evaluation.rollouts import evaluate_rollouts, evaluation_windows, paired_margin, rollout
from .evaluation.tables import capped_counts
from .models import MODEL_REGISTRY, latent, masking, transformer
from .models.latent import categorical_kl, kl_losses, mode_one_hot, straight_through_sample, unimix_logits
from .models.nets import ConvDecoder, ConvEncoder
from .models.rssm import RSSMWorldModel
from .models.transformer import TransformerDynamics, TransformerWorldModel
from .models.vae import CategoricalVAE
from .models.world_model import WorldModel
from .notebook_tools import animate, one_token, play, plots
from .notebook_tools.describe import describe_run
from .notebook_tools.teach import show_source
from .runs import cue_recall, reward_probe
from .runs.benchmark import attention_cost_sweep, kv_cache_speed, run_benchmark
from .runs.checkpoints import CheckpointError, load_checkpoint, load_or_train, save_checkpoint
from .training.loop import next_frame_mse, train_world_model, validation_windows

__all__ = [
    # modules the notebook reads by name
    "animate", "cue_recall", "device", "gaps", "latent", "markov", "masking", "memory_verdict", "notebook",
    "notebook_runner", "one_token", "play", "plots", "reward", "reward_probe", "rollouts", "seeds", "stats", "tables",
    "transformer", "verdict", "wallclock",
    # config, data, models
    "ExperimentConfig", "EpisodeDataset", "load_or_collect", "MODEL_REGISTRY", "WorldModel", "CategoricalVAE",
    "ConvDecoder", "ConvEncoder", "RSSMWorldModel", "TransformerDynamics", "TransformerWorldModel",
    "categorical_kl", "kl_losses", "mode_one_hot", "straight_through_sample", "unimix_logits",
    "imagination_backend",
    # training, checkpoints
    "train_world_model", "validation_windows", "next_frame_mse", "CheckpointError", "load_checkpoint",
    "save_checkpoint", "load_or_train",
    # evaluation
    "PSNR_CAP_DB", "psnr", "evaluate_rollouts", "evaluation_windows", "rollout", "paired_margin", "capped_counts",
    "load_results", "save_results",
    # notebook tools, speed
    "describe_run", "show_source", "attention_cost_sweep", "kv_cache_speed", "run_benchmark",
]
