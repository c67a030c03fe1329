"""Cue recall (Section 6): both backbones learn one memory task on the same tokens.

A sequence of T = lead_in + max gap + 1 steps of ordinary Boxing (real tokens, real actions). At
step T-1-L a *cue* replaces the frame. The last action is a new one, RECALL (id = the number of
game actions), and the last frame is the cue again: to predict it the model must carry the cue
across L steps. `lead_in` ordinary frames come before the earliest cue, so the longest gap never
puts the cue on the sequence's first token (a first position is special for attention).
Control: the same sequence with the cue shown once more right before the recall (step T-2), so a
model that fails only without it fails at memory, not at drawing the cue.

Two loads (how much must be carried):
    identify  one of `cues` snapshots (held-out frames chosen once): log2(cues) bits. Score: the
              pool cue whose tokens agree most with the prediction is the right one.
    copy      any frame: trained on cues drawn from the training frames, evaluated on cues drawn
              from `copy_pool` held-out frames. The whole 32-categorical token must be carried.
              Score: fraction of the 32 categoricals equal to the cue's.
Chance, per load, is measured on the evaluation sequences themselves: the score of the best
constant prediction (always the most frequent cue; per categorical the most frequent class).

Three conditions, trained on the same batches with the same budget and optimiser:
    RSSM                        the GRU: the cue must live in its 256-unit state
    Transformer, full window    attention may read every step of the sequence
    Transformer, main window    the main model's window (2 x cfg.seq_len tokens = cfg.seq_len
                                steps per layer): a gap beyond it can only be bridged by one layer
                                passing the cue on to the next, which it must learn to do
All are fresh dynamics (`from_config` with the training seed) on tokens of ONE frozen VAE: no
convolution runs, and any difference is the dynamics' memory. The loss is the token
cross-entropy at every step, with the recall step weighted as much as all others together.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..config import ExperimentConfig
from ..data import to_float_frames
from ..models import MODEL_REGISTRY
from ..progress import progress_bar

LOADS = {"identify": "identified", "copy": "match"}  # load -> its score
CONDITIONS = ("RSSM", "Transformer, full window", "Transformer, main window")


@dataclass(frozen=True)
class CueRecallConfig:
    """Every number of the cue-recall experiment (the seeds file keeps it with its runs)."""

    cues: int = 8  # identify: snapshots to tell apart (3 bits)
    copy_pool: int = 1024  # copy: held-out frames an evaluation cue is drawn from
    gaps: tuple[int, ...] = (2, 8, 14, 20, 24)  # 20 and 24 lie beyond the main window's 16 steps
    lead_in: int = 3  # ordinary frames before the earliest cue
    # Budgets per load, the same for every condition: the notebook trains all six in ~75 s on a 2-core
    # AMD EPYC (AVX-512), within its 120 s; identify flattens near the end, copy is still learning
    # (memory_verdict.conclusion_facts says which curves still rise; long() is where they flatten).
    identify_steps: int = 150
    copy_steps: int = 250
    batch_size: int = 8
    eval_points: int = 6  # points on each learning curve, evenly spaced, the last after training
    eval_sequences: int = 16  # per gap and condition, from held-out frames
    control_fraction: float = 0.25  # training sequences that show the cue again before the recall
    bank_frames: int = 3000  # frames tokenised per split (ordinary Boxing around the cue)

    @property
    def seq_len(self) -> int:
        return self.lead_in + max(self.gaps) + 1

    def steps(self, load: str) -> int:
        return {"identify": self.identify_steps, "copy": self.copy_steps}[load]

    @classmethod
    def long(cls) -> "CueRecallConfig":
        """A longer budget, for the seeds file only: where the curves flatten (if they do)."""
        return cls(identify_steps=750, copy_steps=1350, eval_points=10)

    @classmethod
    def smoke(cls) -> "CueRecallConfig":
        return cls(cues=4, copy_pool=16, gaps=(2, 17), lead_in=1, identify_steps=3, copy_steps=3, batch_size=4,
                   eval_points=2, eval_sequences=4, bank_frames=300)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def default_config(cfg: ExperimentConfig) -> CueRecallConfig:
    return CueRecallConfig.smoke() if cfg.smoke_mode else CueRecallConfig()


# ------------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def token_bank(vae, dataset, frames: int, batch: int = 256) -> dict:
    """Mode tokens of the first `frames` rows of `dataset` under a frozen VAE: index [N, V] (long),
    with the rows' actions and episode ids, so sequences never cross an episode end."""
    n = min(frames, len(dataset))
    obs = dataset.arrays["obs"][:n]
    dev = next(vae.parameters()).device
    idx = []
    for i in range(0, n, batch):
        x = to_float_frames(obs[i:i + batch]).to(dev)
        idx.append(vae.encode(x).view(len(x), vae.latent_vars, vae.latent_classes).argmax(-1).cpu())
    return {"index": torch.cat(idx), "action": torch.from_numpy(dataset.arrays["action"][:n]).long(),
            "episode": torch.from_numpy(dataset.arrays["episode"][:n]).long()}


def bank_starts(episode: torch.Tensor, length: int) -> torch.Tensor:
    """Every row s such that rows s .. s+length-1 lie in one episode."""
    if len(episode) < length:
        raise ValueError(f"need at least {length} tokenised frames in one episode, got {len(episode)}")
    starts = torch.nonzero(episode[: len(episode) - length + 1] == episode[length - 1:]).flatten()
    if len(starts) == 0:
        raise ValueError(f"no episode holds {length} consecutive tokenised frames")
    return starts


def cue_batch(bank: dict, pool: torch.Tensor, seq_len: int, recall_action: int, generator: torch.Generator,
              batch: int, gap=None, control=None) -> dict:
    """Sequences of the task: {"index" [B, T, V], "action" [B, T], "cue" [B], "gap" [B], "control" [B]}.

    pool [K, V]: the tokens a cue is drawn from (cue = a row of it). gap: an int or a [B] tensor, or
    None for uniform 1..max (the earliest cue at step 1); control: a bool or [B] bool tensor, or None
    for none. index[:, t+1] is the frame after action[:, t]. The same generator state gives the
    same sequences whatever `control` is, so a control differs from its memory sequence only at T-2."""
    T = seq_len
    starts = bank_starts(bank["episode"], T)
    s = starts[torch.randint(len(starts), (batch,), generator=generator)]
    rows = s[:, None] + torch.arange(T)
    index, action = bank["index"][rows].clone(), bank["action"][rows].clone()
    cue = torch.randint(len(pool), (batch,), generator=generator)
    if gap is None:
        gap = torch.randint(1, T - 1, (batch,), generator=generator)
    gap = torch.as_tensor(gap).expand(batch).clone()
    control = torch.as_tensor(False if control is None else control).expand(batch).clone()
    b = torch.arange(batch)
    index[b, T - 1 - gap] = pool[cue]  # the cue, seen once ...
    index[control, T - 2] = pool[cue[control]]  # ... or, in the control, again just before the recall
    action[:, T - 2] = recall_action  # "show me the cue"
    index[:, T - 1] = pool[cue]  # the frame to predict
    return {"index": index, "action": action, "cue": cue, "gap": gap, "control": control}


def score(pred: torch.Tensor, cue: torch.Tensor, pool: torch.Tensor, metric: str) -> torch.Tensor:
    """[B] score of predictions pred [B, V] against the right cues (rows `cue` of pool [K, V]).

    match: fraction of categoricals equal to the cue's; identified: the pool row with the most equal
    categoricals is the right one (ties go to the lowest index, so a tie is not a win for free)."""
    if metric == "match":
        return (pred == pool[cue]).float().mean(-1)
    agree = (pred[:, None, :] == pool[None]).float().mean(-1)  # [B, K]
    return (agree.argmax(-1) == cue).float()


def chance_level(cue: torch.Tensor, pool: torch.Tensor, metric: str) -> float:
    """The score of the best constant prediction on these cues: for "identified", always naming the
    most frequent cue; for "match", per categorical the class the cues show most often."""
    if metric == "identified":
        return float(torch.bincount(cue).max()) / len(cue)
    target = pool[cue]
    return float((target == target.mode(0).values).float().mean())


def one_hot(index: torch.Tensor, classes: int) -> torch.Tensor:
    """[..., V] class indices -> flat one-hot latents [..., V*K], the form the dynamics read."""
    return F.one_hot(index, classes).float().flatten(-2)


def recall_loss(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy of the predictions logits [B, T, V, K] (made after action t) against the
    next tokens index [B, T, V] (the frame after action t): mean over steps plus the recall step."""
    ce = -(logits.log_softmax(-1) * F.one_hot(index, logits.shape[-1])).sum((-1, -2))  # [B, T]
    return ce.mean() + ce[:, -1].mean()


@dataclass
class CueTask:
    """The fixed parts of one load: training bank and cue pool, held-out sequences and their chance."""

    load: str
    train_bank: dict
    train_pool: torch.Tensor  # [K, V] tokens a training cue is drawn from
    eval_pool: torch.Tensor  # [K', V] tokens an evaluation cue is drawn from
    eval_seq: dict  # one cue_batch: every gap, memory then control (eval_sequences each)
    chance: float
    recall_action: int
    classes: int
    mcfg: CueRecallConfig

    @property
    def metric(self) -> str:
        return LOADS[self.load]


def build_tasks(vae, train, val, cfg: ExperimentConfig, mcfg: CueRecallConfig) -> dict:
    """{load: CueTask}. Cues and held-out sequences are chosen once from the DATA seed, so every
    training seed and condition meets the same task."""
    train_bank, val_bank = token_bank(vae, train, mcfg.bank_frames), token_bank(vae, val, mcfg.bank_frames)
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(val_bank["index"]), generator=g)
    snapshots = val_bank["index"][order[: mcfg.cues]]
    copy_pool = val_bank["index"][order[: mcfg.copy_pool]]
    pools = {"identify": (snapshots, snapshots), "copy": (train_bank["index"], copy_pool)}
    gaps = torch.tensor(mcfg.gaps).repeat_interleave(mcfg.eval_sequences)
    tasks = {}
    for load, (train_pool, eval_pool) in pools.items():
        seqs = [cue_batch(val_bank, eval_pool, mcfg.seq_len, int(train.num_actions),
                          torch.Generator().manual_seed(cfg.seed), len(gaps), gap=gaps, control=control)
                for control in (False, True)]  # the same sequences, the control with the cue shown again
        seq = {k: torch.cat([s[k] for s in seqs]) for k in seqs[0]}
        tasks[load] = CueTask(load, train_bank, train_pool, eval_pool, seq,
                              chance_level(seqs[0]["cue"], eval_pool, LOADS[load]), int(train.num_actions),
                              vae.latent_classes, mcfg)
    return tasks


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
def condition_config(cfg: ExperimentConfig, condition: str, seq_len: int) -> tuple[type, ExperimentConfig]:
    """The model class and config of a condition. The Transformer's window is 2 x cfg.seq_len tokens
    (from_config); the full window is that of a model trained on sequences of the task's length."""
    if condition == "RSSM":
        return MODEL_REGISTRY["rssm"], cfg
    full = condition == "Transformer, full window"
    return MODEL_REGISTRY["transformer"], cfg.replace(seq_len=max(seq_len, cfg.seq_len)) if full else cfg


@torch.no_grad()
def evaluate(model, task: CueTask) -> dict:
    """{"memory", "control"}: mean score per gap on the held-out sequences, mode predictions."""
    model.eval()
    seq = task.eval_seq
    logits = model.next_token_logits(one_hot(seq["index"], task.classes).to(model.device),
                                     seq["action"].to(model.device))
    s = score(logits[:, -2].argmax(-1).cpu(), seq["cue"], task.eval_pool, task.metric)  # read after RECALL
    return {cond: [float(s[(seq["gap"] == g) & (seq["control"] == (cond == "control"))].mean())
                   for g in task.mcfg.gaps] for cond in ("memory", "control")}


def train_condition(task: CueTask, condition: str, cfg: ExperimentConfig, progress: bool = True) -> dict:
    """Train a fresh backbone (cfg.train_seed) on one load: {"step", "memory", "control"} per curve
    point ([points][gaps]), "seconds" (training and evaluation), "window_steps" (None: recurrent).

    Only the dynamics learn: the model's own VAE is never called (the tokens are the shared VAE's)."""
    mcfg = task.mcfg
    cls, ccfg = condition_config(cfg, condition, mcfg.seq_len)
    model = cls.from_config(ccfg, num_actions=task.recall_action + 1)
    params = [p for n, p in model.named_parameters() if not n.startswith("vae.")]
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)
    g = torch.Generator().manual_seed(cfg.train_seed)
    total = mcfg.steps(task.load)
    points = sorted({round(i * total / (mcfg.eval_points - 1)) for i in range(mcfg.eval_points)})
    out = {"step": [], "memory": [], "control": []}
    t0 = time.perf_counter()
    with progress_bar(total=total, desc=f"{task.load}: {condition}", unit="step", disable=not progress) as bar:
        for step in range(total + 1):
            if step in points:
                out["step"].append(step)
                for cond, values in evaluate(model, task).items():
                    out[cond].append(values)
            if step == total:
                break
            model.train()
            seq = cue_batch(task.train_bank, task.train_pool, mcfg.seq_len, task.recall_action, g, mcfg.batch_size,
                            control=torch.rand(mcfg.batch_size, generator=g) < mcfg.control_fraction)
            logits = model.next_token_logits(one_hot(seq["index"], task.classes).to(model.device),
                                             seq["action"].to(model.device))
            loss = recall_loss(logits[:, :-1], seq["index"][:, 1:].to(model.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            bar.update(1)
    window = getattr(getattr(model, "dynamics", None), "window", None)
    return out | {"seconds": time.perf_counter() - t0, "window_steps": window // 2 if window else None}


def run_cue_recall(vae, train, val, cfg: ExperimentConfig, mcfg: CueRecallConfig | None = None,
                   progress: bool = True) -> dict:
    """Every load x condition for cfg.train_seed, same batches and budget within a load.

    Returns plain JSON: {"config", "train_seed", "seconds", "loads": {load: {"metric", "chance",
    "gaps", "models": {condition: train_condition(...)}}}}; the final point of a curve is the result."""
    mcfg = mcfg or default_config(cfg)
    t0 = time.perf_counter()
    tasks = build_tasks(vae.eval(), train, val, cfg, mcfg)  # the VAE only tokenises, without gradients
    loads = {load: {"metric": task.metric, "chance": task.chance, "gaps": list(mcfg.gaps),
                    "models": {c: train_condition(task, c, cfg, progress) for c in CONDITIONS}}
             for load, task in tasks.items()}
    return {"config": mcfg.to_dict(), "train_seed": cfg.train_seed, "seconds": time.perf_counter() - t0,
            "loads": loads}
