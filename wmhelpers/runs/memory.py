"""Where the backbone matters (Section 6): a Markov check on the trained world models, and a
cue-recall experiment in which both backbones learn one memory task on the same tokens.

**Markov check.** Each trained world model is scored with its real past cut to K steps: both
observe only the last K of the 8 context frames, then imagine with the real actions as in Section 4.
(Cutting the Transformer's per-layer attention window instead would not cut its past: each layer
reads the previous layer's outputs, which already looked a window further back, so 4 layers of a
16-step window reach 64 steps.) If PSNR does not move beyond K = 1-2, the distant past adds
nothing to predicting Boxing, and neither backbone can win by remembering.

**Cue recall.** A sequence of T = max gap + 1 steps of ordinary Boxing (real tokens, real actions).
At step T-1-L a *cue* replaces the frame: one of `cues` snapshots of the ring, chosen once from
held-out frames. The last action is a new one, RECALL (id = the number of game actions), and the
last frame is the cue again: to predict it, the model must remember which cue it saw L steps ago.
Control: the same sequence with the cue shown once more right before the recall (step T-2), so a
model that fails only without it fails at memory, not at drawing the cue.

Both backbones are fresh dynamics (`from_config` with the training seed) trained with the same
batches, budget and optimiser on tokens of ONE frozen VAE. The observation model is therefore
shared and fixed, no convolution runs in the loop (seconds, not the conv stack's minutes), and any
difference is the dynamics' memory. The loss is the token cross-entropy (the main training's
token-prediction loss with a one-hot target) at every step, with the recall step weighted as much
as all other steps together, so one step in twenty is not drowned by ordinary Boxing.

Recall of one prediction, read from the mode token:
    match       fraction of the 32 categoricals equal to the cue's token
    identified  the cue whose token agrees most is the right one (chance: 1 / cues)
    decoded     the decoded frame is nearest (MSE) to the right cue's frame (checked at the end)
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ExperimentConfig
from ..evaluation.psnr import psnr
from ..progress import progress_bar


# ------------------------------------------------------------------------------------------------
# Markov check
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def markov_check(models: dict, windows: dict, cfg: ExperimentConfig, ks=(1, 2, 4, 8), horizons=(1, 5, 10),
                 batch: int = 32) -> dict:
    """PSNR (whole frame, dB, mean over windows) at `horizons` with the past cut to K steps.

    windows: {"obs" [N, C+H, 3, 64, 64] float, "action" [N, C+H]} (evaluation windows, context C).
    Returns {"ks", "horizons", "n_windows", "psnr": {model: [[dB per horizon] per K]}}."""
    C, H = cfg.context, max(horizons)
    if max(ks) > C:
        raise ValueError(f"K up to {max(ks)} needs at least that many context frames; context is {C}")
    out = {"ks": list(ks), "horizons": list(horizons), "n_windows": int(windows["obs"].shape[0]), "psnr": {}}
    for name, model in models.items():
        model.eval()
        dev = model.device
        rows = []
        for k in ks:
            scores = []
            for i in range(0, windows["obs"].shape[0], batch):
                obs = windows["obs"][i:i + batch].to(dev)
                act = windows["action"][i:i + batch].to(dev)
                state = model.observe(obs[:, C - k:C], act[:, C - k:C - 1])  # only the last k real frames
                imagined = model.imagine(state, act[:, C - 1:C - 1 + H])
                frames = model.decode(imagined["latent"][:, [h - 1 for h in horizons]])
                scores.append(psnr(frames, obs[:, [C - 1 + h for h in horizons]]).cpu())
            rows.append([float(x) for x in torch.cat(scores).mean(0)])
        out["psnr"][name] = rows
    return out


# ------------------------------------------------------------------------------------------------
# Cue recall: the task
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CueRecallConfig:
    """Every number of the cue-recall experiment (the seeds file keeps it with its runs)."""

    cues: int = 8  # snapshots to tell apart: chance of naming the right one is 1/8
    gaps: tuple[int, ...] = (2, 5, 10, 15, 17, 20)  # steps between cue and recall; 17, 20 lie beyond a 16-step window
    train_steps: int = 150
    batch_size: int = 16
    eval_every: int = 25  # the learning curve's resolution
    eval_sequences: int = 48  # per gap and condition, from held-out frames
    control_fraction: float = 0.25  # training sequences that show the cue again before the recall
    bank_frames: int = 3000  # training frames tokenised (ordinary Boxing between cue and recall)

    @property
    def seq_len(self) -> int:
        return max(self.gaps) + 1

    @classmethod
    def smoke(cls) -> "CueRecallConfig":
        return cls(cues=4, gaps=(2, 5), train_steps=4, batch_size=4, eval_every=2, eval_sequences=4,
                   bank_frames=300)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@torch.no_grad()
def token_bank(vae, dataset, frames: int, batch: int = 256) -> dict:
    """Mode tokens of the first `frames` rows of `dataset` under a frozen VAE: index [N, V] (long),
    with the rows' actions and episode ids, so sequences never cross an episode end."""
    n = min(frames, len(dataset))
    obs = dataset.arrays["obs"][:n]
    dev = next(vae.parameters()).device
    idx = []
    for i in range(0, n, batch):
        x = torch.from_numpy(obs[i:i + batch]).to(dev).permute(0, 3, 1, 2).float() / 255
        idx.append(vae.encode(x).view(len(x), vae.latent_vars, vae.latent_classes).argmax(-1).cpu())
    return {"index": torch.cat(idx), "action": torch.from_numpy(dataset.arrays["action"][:n]).long(),
            "episode": torch.from_numpy(dataset.arrays["episode"][:n]).long(), "obs": obs}


def cue_batch(bank: dict, cue_index: torch.Tensor, seq_len: int, recall_action: int, generator: torch.Generator,
              batch: int, gap=None, control=None) -> dict:
    """Sequences of the task: {"index" [B, T, V], "action" [B, T], "cue" [B], "gap" [B], "control" [B]}.

    gap: an int for every sequence, or None for uniform 1..T-1; control: a bool for every sequence,
    a [B] bool tensor, or None for none. index[:, t+1] is the frame after action[:, t]."""
    T = seq_len
    starts = bank_starts(bank["episode"], T)
    s = starts[torch.randint(len(starts), (batch,), generator=generator)]
    rows = s[:, None] + torch.arange(T)
    index, action = bank["index"][rows].clone(), bank["action"][rows].clone()
    cue = torch.randint(len(cue_index), (batch,), generator=generator)
    if gap is None:
        gap = torch.randint(1, T, (batch,), generator=generator)
    gap = torch.as_tensor(gap).expand(batch).clone()
    control = torch.as_tensor(False if control is None else control).expand(batch).clone()
    b = torch.arange(batch)
    index[b, T - 1 - gap] = cue_index[cue]  # the cue, seen once ...
    index[control, T - 2] = cue_index[cue[control]]  # ... or, in the control, again just before the recall
    action[:, T - 2] = recall_action  # "show me the cue"
    index[:, T - 1] = cue_index[cue]  # the frame to predict
    return {"index": index, "action": action, "cue": cue, "gap": gap, "control": control}


def bank_starts(episode: torch.Tensor, length: int) -> torch.Tensor:
    """Every row s such that rows s .. s+length-1 lie in one episode."""
    if len(episode) < length:
        raise ValueError(f"need at least {length} tokenised frames in one episode, got {len(episode)}")
    starts = torch.nonzero(episode[: len(episode) - length + 1] == episode[length - 1:]).flatten()
    if len(starts) == 0:
        raise ValueError(f"no episode holds {length} consecutive tokenised frames")
    return starts


def recall_scores(pred: torch.Tensor, cue: torch.Tensor, cue_index: torch.Tensor) -> dict:
    """pred [B, V] predicted class per categorical, cue [B] the right cue, cue_index [K, V].

    match: fraction of categoricals equal to the right cue's; identified: the cue with the most
    equal categoricals is the right one (ties go to the lowest index, so a tie is not a win for free)."""
    agree = (pred[:, None, :] == cue_index[None]).float().mean(-1)  # [B, K]
    return {"match": agree[torch.arange(len(cue)), cue], "identified": (agree.argmax(-1) == cue).float()}


def one_hot(index: torch.Tensor, classes: int) -> torch.Tensor:
    """[..., V] class indices -> flat one-hot latents [..., V*K], the form the dynamics read."""
    return F.one_hot(index, classes).float().flatten(-2)


def recall_loss(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy of the predictions logits [B, T, V, K] (made after action t) against the
    next tokens index [B, T, V] (the frame after action t): mean over steps plus the recall step."""
    ce = -(logits.log_softmax(-1) * F.one_hot(index, logits.shape[-1])).sum((-1, -2))  # [B, T]
    return ce.mean() + ce[:, -1].mean()


# ------------------------------------------------------------------------------------------------
# Cue recall: training both backbones
# ------------------------------------------------------------------------------------------------
@dataclass
class CueTask:
    """The fixed parts of one cue-recall run: token banks, cues and held-out evaluation sequences."""

    train_bank: dict
    cue_index: torch.Tensor  # [K, V]
    cue_frames: np.ndarray  # [K, 64, 64, 3] uint8
    eval_sets: dict  # (gap, control) -> a cue_batch
    recall_action: int
    classes: int
    mcfg: CueRecallConfig
    device: torch.device


def build_task(vae, train, val, cfg: ExperimentConfig, mcfg: CueRecallConfig) -> CueTask:
    """Tokenise training and held-out frames with the frozen VAE; choose the cues and the held-out
    sequences once from the DATA seed, so every training seed meets the same task."""
    vae.eval()
    train_bank = token_bank(vae, train, mcfg.bank_frames)
    val_bank = token_bank(vae, val, mcfg.bank_frames)
    g = torch.Generator().manual_seed(cfg.seed)
    rows = torch.randperm(len(val_bank["index"]), generator=g)[: mcfg.cues]
    cue_index, cue_frames = val_bank["index"][rows], val_bank["obs"][rows.numpy()]
    recall_action = int(train.num_actions)
    eval_sets = {}
    for gap in mcfg.gaps:
        for control in (False, True):
            eg = torch.Generator().manual_seed(cfg.seed * 1000 + gap * 2 + int(control))
            eval_sets[(gap, control)] = cue_batch(val_bank, cue_index, mcfg.seq_len, recall_action, eg,
                                                  mcfg.eval_sequences, gap=gap, control=control)
    return CueTask(train_bank, cue_index, cue_frames, eval_sets, recall_action, vae.latent_classes, mcfg,
                   next(vae.parameters()).device)


@torch.no_grad()
def evaluate_recall(model, task: CueTask) -> dict:
    """{(gap, control): {"match", "identified"}} means on the held-out sequences, mode predictions."""
    model.eval()
    out = {}
    for key, seq in task.eval_sets.items():
        logits = model.next_token_logits(one_hot(seq["index"], task.classes).to(model.device),
                                         seq["action"].to(model.device))
        pred = logits[:, -2].argmax(-1).cpu()  # read after the RECALL action: the prediction of the last frame
        out[key] = {k: float(v.mean()) for k, v in recall_scores(pred, seq["cue"], task.cue_index).items()}
    return out


@torch.no_grad()
def decoded_recall(model, vae, task: CueTask) -> dict:
    """{gap: fraction of memory-condition recalls whose decoded frame is nearest the right cue's frame}."""
    cue_frames = torch.from_numpy(task.cue_frames).permute(0, 3, 1, 2).float().to(model.device) / 255
    out = {}
    for (gap, control), seq in task.eval_sets.items():
        if control:
            continue
        logits = model.next_token_logits(one_hot(seq["index"], task.classes).to(model.device),
                                         seq["action"].to(model.device))
        frames = vae.decode(one_hot(logits[:, -2].argmax(-1), task.classes))
        dist = ((frames[:, None] - cue_frames[None]) ** 2).mean((-1, -2, -3))  # [B, K]
        out[gap] = float((dist.argmin(-1).cpu() == seq["cue"]).float().mean())
    return out


def train_recall(model_cls, task: CueTask, cfg: ExperimentConfig, progress: bool = True, desc: str = "") -> dict:
    """Train a fresh backbone (cfg.train_seed) on the task; returns its learning curve and final recall.

    Only the dynamics learn: the model's own VAE is never called (the tokens are the shared VAE's)."""
    mcfg = task.mcfg
    model = model_cls.from_config(cfg, num_actions=task.recall_action + 1, device=task.device)
    params = [p for n, p in model.named_parameters() if not n.startswith("vae.")]
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)
    g = torch.Generator().manual_seed(cfg.train_seed)
    curve = {"step": [], "recall": []}
    t0 = time.perf_counter()
    bar = progress_bar(total=mcfg.train_steps, desc=desc or f"cue recall {model_cls.__name__}", unit="step",
                       disable=not progress)
    for step in range(mcfg.train_steps + 1):
        if step % mcfg.eval_every == 0 or step == mcfg.train_steps:
            curve["step"].append(step)
            curve["recall"].append(evaluate_recall(model, task))
        if step == mcfg.train_steps:
            break
        model.train()
        seq = cue_batch(task.train_bank, task.cue_index, mcfg.seq_len, task.recall_action, g, mcfg.batch_size,
                        control=torch.rand(mcfg.batch_size, generator=g) < mcfg.control_fraction)
        logits = model.next_token_logits(one_hot(seq["index"], task.classes).to(task.device),
                                         seq["action"].to(task.device))
        loss = recall_loss(logits[:, :-1], seq["index"][:, 1:].to(task.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        bar.update(1)
    bar.close()
    return {"model": model, "curve": curve, "seconds": time.perf_counter() - t0}


def summarize_run(result: dict, vae, task: CueTask) -> dict:
    """One backbone's run in the seeds file's form (plain JSON): the learning curve per gap and
    condition, the final recall and the decoded check."""
    gaps = task.mcfg.gaps

    def table(recall: dict, metric: str) -> dict:
        return {cond: [recall[(g, cond == "control")][metric] for g in gaps] for cond in ("memory", "control")}

    final = result["curve"]["recall"][-1]
    decoded = decoded_recall(result["model"], vae, task)
    return {
        "gaps": list(gaps), "seconds": result["seconds"],
        "identified": table(final, "identified"), "match": table(final, "match"),
        "decoded": [decoded[g] for g in gaps],
        "curve": {"step": result["curve"]["step"],
                  "identified": [table(r, "identified") for r in result["curve"]["recall"]]},
    }


def run_cue_recall(model_classes: dict, vae, train, val, cfg: ExperimentConfig,
                   mcfg: CueRecallConfig | None = None, progress: bool = True) -> dict:
    """Both backbones on the same task, batches and budget. model_classes: {"RSSM": cls, ...}.

    Returns {"config", "train_seed", "models": {name: summarize_run(...)}}."""
    mcfg = mcfg or (CueRecallConfig.smoke() if cfg.smoke_mode else CueRecallConfig())
    with _frozen(vae):
        task = build_task(vae, train, val, cfg, mcfg)
        runs = {name: summarize_run(train_recall(cls, task, cfg, progress, f"cue recall: {name}"), vae, task)
                for name, cls in model_classes.items()}
    return {"config": mcfg.to_dict(), "train_seed": cfg.train_seed, "chance": 1 / mcfg.cues, "models": runs}


@contextlib.contextmanager
def _frozen(module):
    """No gradient into `module` while the block runs (the shared VAE must not learn)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)
