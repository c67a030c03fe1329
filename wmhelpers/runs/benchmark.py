"""Speed, all in one run on one device (ratios from one run are what to trust on a noisy machine):
training step time, imagination throughput (`kv_cache_speed`: KV cache vs recompute, and the RSSM),
and the attention-cost sweep. Every result names its device. `mps_self_check`, registered with
device.py on import, compares a training and an imagination step on MPS with the CPU's.
"""

from __future__ import annotations

import copy
import json
import time

import torch

from ..config import ExperimentConfig
from ..cuda_graphs import imagination_backend
from ..data import load_or_collect
from ..device import device_name, median_ms, seconds, set_mps_check
from ..evaluation.rollouts import token_agreement
from ..models.rssm import RSSMWorldModel
from ..models.transformer import TransformerDynamics, TransformerWorldModel
from ..training.step import TrainStep, graphs_wanted, train_step_ms

BOXING_ACTIONS = 18  # the action count of Atari Boxing: sizes one embedding of the timed model


@torch.no_grad()
def recompute_latents(model, z: torch.Tensor, actions_ctx: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Transformer imagination WITHOUT a cache, from context latents z [B, C, D] and the C-1
    actions between them: step k re-runs the whole token sequence z_0, a_0, ..., z_{C-1+k}, a_{C-1+k}
    and keeps the mode of the last prediction, p(z_{C+k} | everything before). -> latents [B, H, D]."""
    acts = actions_ctx
    latents = []
    for k in range(actions.shape[1]):
        acts = torch.cat([acts, actions[:, k : k + 1]], 1)
        out = model.dynamics(z, acts)
        nxt = model._pick(out["next_logits"][:, -1], False, None)
        z = torch.cat([z, nxt[:, None]], 1)
        latents.append(nxt)
    return torch.stack(latents, 1)


def _future_actions(model, given: torch.Tensor, horizon: int, device) -> torch.Tensor:
    """The first `horizon` given future actions; any missing ones drawn at random (fixed seed)."""
    B = given.shape[0]
    if given.shape[1] >= horizon:
        return given[:, :horizon].to(device)
    extra = torch.randint(model.num_actions, (B, horizon - given.shape[1]), generator=torch.Generator().manual_seed(0))
    return torch.cat([given.cpu(), extra], 1).to(device)


@torch.no_grad()
def observe_ms(model, obs: torch.Tensor, actions: torch.Tensor, repeats: int = 3) -> float:
    """Median wall time of `observe` (encode the context, prefill the cache) for a batch."""
    model.eval()
    C = obs.shape[1]
    return median_ms(lambda: model.observe(obs, actions[:, : C - 1]), repeats, 1, obs.device)


@torch.no_grad()
def imagination_fps(model, obs: torch.Tensor, actions: torch.Tensor, horizon: int, repeats: int = 3) -> float:
    """Imagined frames (latents, no decoding) per second for a batch, context from obs.
    `observe` runs once, outside the clock: only the H imagined steps are timed."""
    model.eval()
    B, C = obs.shape[:2]
    fut = _future_actions(model, actions[:, :0], horizon, obs.device)
    state = model.observe(obs, actions[:, : C - 1])
    ms = median_ms(lambda: model.imagine(state, fut), repeats, 1, obs.device)
    return B * horizon / (ms / 1000)


@torch.no_grad()
def kv_cache_speed(model, obs: torch.Tensor, actions: torch.Tensor, horizon: int, budget_s: float = 5.0) -> dict:
    """Imagined steps per second of a Transformer world model with and without its KV cache (alternating
    calls for about `budget_s`, medians compared; `observe` outside the clock), and whether the cached
    latents equal the recomputed ones bit for bit. actions [B, >= C-1]; missing future actions are
    drawn at random, seeded. Returns {"cached_steps_per_s", "recompute_steps_per_s", "ratio",
    "exact", "device", "backend", "horizon", "batch"}."""
    was_training = model.training
    model.eval()
    device = model.device
    obs = obs.to(device)
    B, C = obs.shape[:2]
    ctx_actions = actions[:, : C - 1].to(device)
    fut = _future_actions(model, actions[:, C - 1 :], horizon, device)
    start = time.perf_counter()
    state = model.observe(obs, ctx_actions)
    cached = lambda: model.imagine(state, fut)["latent"]  # noqa: E731
    recompute = lambda: recompute_latents(model, state["latents"], ctx_actions, fut)  # noqa: E731
    exact = torch.equal(cached(), recompute())  # warm-up calls, also the exactness check
    times = {"cached": [], "recompute": []}
    while not times["cached"] or time.perf_counter() - start < budget_s:
        times["cached"].append(seconds(cached, device))
        times["recompute"].append(seconds(recompute, device))
    model.train(was_training)
    rate = {k: B * horizon / sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"cached_steps_per_s": rate["cached"], "recompute_steps_per_s": rate["recompute"],
            "ratio": rate["cached"] / rate["recompute"], "exact": bool(exact), "device": device_name(device),
            "backend": imagination_backend(device), "horizon": horizon, "batch": B, "repeats": len(times["cached"])}


def attention_cost_sweep(cfg: ExperimentConfig, num_actions: int, seq_lens=None, batch: int = 8, repeats: int = 5,
                         warmup: int = 2, device=None) -> dict:
    """Dynamics-only training step (forward + backward, no conv) vs sequence length: a full-window
    TransformerDynamics (cost ~ T^2) against the RSSM's GRU recurrence (~ T, sequential)."""
    seq_lens = tuple(cfg.sweep_seq_lens if seq_lens is None else seq_lens)
    A = num_actions
    device = torch.device(device) if device is not None else cfg.resolve_device()
    torch.manual_seed(cfg.seed)
    rssm = RSSMWorldModel.from_config(cfg.replace(amp="off"), num_actions=A, device=device)
    out = {"seq_lens": list(seq_lens), "batch": batch, "transformer_ms": [], "gru_ms": [],
           "device": device_name(device), "used_seq_len": cfg.seq_len, "num_actions": A}
    for T in seq_lens:
        z = torch.zeros(batch, T, cfg.latent_vars, cfg.latent_classes, device=device)
        z.scatter_(-1, torch.randint(cfg.latent_classes, (batch, T, cfg.latent_vars, 1), device=device), 1.0)
        z = z.flatten(2)
        a = torch.randint(A, (batch, T), device=device)
        tf = TransformerDynamics(cfg.latent_vars, cfg.latent_classes, A, cfg.tf_dim, cfg.tf_layers, cfg.tf_heads,
                                 0.0, 2 * T, cfg.hidden, cfg.unimix).to(device)

        def tf_step():
            tf.zero_grad(set_to_none=True)
            tf(z, a)["next_logits"].mean().backward()

        def gru_step():
            rssm.zero_grad(set_to_none=True)
            h = rssm.initial(batch)
            hs = []
            for t in range(T):
                h = rssm.img_step(h, z[:, t], a[:, t])
                hs.append(h)
            rssm.prior(torch.stack(hs, 1)).mean().backward()

        # two warm-up calls: the first call at a new shape pays one-time kernel setup
        out["transformer_ms"].append(median_ms(tf_step, repeats, warmup, device))
        out["gru_ms"].append(median_ms(gru_step, repeats, warmup, device))
    return out


def run_benchmark(cfg: ExperimentConfig | None = None, horizons=(10, 50, 200), sweep: bool = True,
                  progress: bool = True) -> dict:
    """Everything above in one run; returns a JSON-ready dict that names the device."""
    cfg = cfg or ExperimentConfig.from_env()
    device = cfg.resolve_device()
    data = load_or_collect(cfg, progress=progress, verbose=progress)
    train, _ = data.split(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    batch = {k: v.to(device) for k, v in train.sample(cfg.batch_size, cfg.seq_len, g).items()}
    ctx = train.sample(16, cfg.context, g)
    obs, act = ctx["obs"].to(device), ctx["action"].to(device)
    res = {"device": device_name(device), "torch": str(torch.__version__), "batch": cfg.batch_size,
           "seq_len": cfg.seq_len, "precision": cfg.precision,
           "imagination_backend": imagination_backend(device), "train_step_ms": {},
           "observe_ms": {},
           "imagine_frames_per_s": {"transformer_cached": {}, "transformer_recompute": {}, "rssm": {}}}
    models = {"transformer": TransformerWorldModel.from_config(cfg, data.num_actions),
              "rssm": RSSMWorldModel.from_config(cfg, data.num_actions)}
    res["train_step_backend"] = {}
    for name, m in models.items():
        res["train_step_ms"][name], res["train_step_backend"][name] = train_step_ms(m, batch, cfg)
    if graphs_wanted(cfg, device):  # the gain of the CUDA graph: the same step, eager
        for name, cls in (("transformer", TransformerWorldModel), ("rssm", RSSMWorldModel)):
            res["train_step_ms"][f"{name}_eager"], _ = train_step_ms(cls.from_config(cfg, data.num_actions), batch,
                                                                     cfg, graphs=False)
        res["graph_speedup_transformer_step"] = (res["train_step_ms"]["transformer_eager"]
                                                 / res["train_step_ms"]["transformer"])
    for amp in ("off", "bf16"):  # the same step with and without mixed precision on the conv parts
        amp_cfg = cfg.replace(amp=amp)
        m = TransformerWorldModel.from_config(amp_cfg, data.num_actions)
        res["train_step_ms"][f"transformer_amp_{amp}"], _ = train_step_ms(m, batch, amp_cfg)
    res["ratio_transformer_over_rssm_step"] = res["train_step_ms"]["transformer"] / res["train_step_ms"]["rssm"]
    for name, m in models.items():
        res["observe_ms"][name] = observe_ms(m, obs, act)
    fps = res["imagine_frames_per_s"]
    for H in horizons:  # one imagined step of one sequence is one frame
        kv = kv_cache_speed(models["transformer"], obs, act, H, budget_s=2.0)
        fps["transformer_cached"][H], fps["transformer_recompute"][H] = kv["cached_steps_per_s"], \
            kv["recompute_steps_per_s"]
        fps["rssm"][H] = imagination_fps(models["rssm"], obs, act, H)
        if H == horizons[len(horizons) // 2]:  # the notebook's measurement, with its exactness check
            res["kv_cache_speed"] = kv
    res["kv_cache_speedup"] = {H: fps["transformer_cached"][H] / fps["transformer_recompute"][H] for H in horizons}
    if sweep:
        res["attention_cost"] = attention_cost_sweep(cfg, device=device, num_actions=data.num_actions)
    return json.loads(json.dumps(res))  # plain JSON types (int keys become strings)


# ---- evidence for device.py's decisions --------------------------------------------------------------
def synthetic_batch(cfg: ExperimentConfig, num_actions: int, batch: int, seq_len: int, seed: int = 0) -> dict:
    """A fixed batch shaped like EpisodeDataset.sample's (frames in [0, 1], actions, rewards, cont)."""
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.rand(batch, seq_len, 3, cfg.frame_size, cfg.frame_size, generator=g),
            "action": torch.randint(num_actions, (batch, seq_len), generator=g),
            "reward": torch.randint(-1, 2, (batch, seq_len), generator=g).float(),
            "cont": torch.ones(batch, seq_len)}


def _step_results(model, cfg: ExperimentConfig, batch: dict, context: int) -> dict:
    """One training step and one imagination step of `model`, as CPU tensors to compare."""
    b = {k: v.to(model.device) for k, v in batch.items()}
    model.train()
    before = TrainStep(model, cfg, graphs=False, sample=False)(b)  # the loss terms of the step, then Adam updates
    with torch.no_grad():
        after = torch.stack(list(model.loss_terms(b, sample=False)[1].values()))
    model.eval()
    state = model.observe(b["obs"][:, :context], b["action"][:, : context - 1])
    imagined = model.imagine(state, b["action"][:, context - 1 : context])  # one imagined step (the mode)
    return {"train_terms": before.cpu(), "terms_after_step": after.cpu(),
            "imagined_logits": imagined["next_logits"].float().cpu(), "imagined_reward": imagined["reward"].cpu(),
            "imagined_latent": imagined["latent"].cpu()}


def mps_self_check(device="mps", reference="cpu", rtol: float = 1e-3, atol: float = 1e-4) -> str | None:
    """None when `device` gives finite results close to `reference`'s for one training step and one
    imagination step of the Transformer world model (same weights, a fixed synthetic batch; dropout
    off and mode latents, so both are deterministic), else why not, in words (device.mps_refusal)."""
    cfg = ExperimentConfig(device=str(reference), amp="off", tf_dropout=0.0)
    context = 4
    batch = synthetic_batch(cfg, BOXING_ACTIONS, 2, 8)
    got = {}
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        ref = TransformerWorldModel.from_config(cfg, BOXING_ACTIONS, device=reference)
        other = copy.deepcopy(ref).to(device)
        for name, model in (("reference", ref), ("device", other)):
            got[name] = _step_results(model, cfg, batch, context)
    where = torch.device(device).type
    for key, value in got["device"].items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            return f"{key.replace('_', ' ')} is not finite on {where}"
    for key, value in got["device"].items():
        want = got["reference"][key]
        if key == "imagined_latent":  # one-hot per variable: the share of variables whose class agrees
            agree = token_agreement(value, want, cfg.latent_vars).mean().item()
            if agree < 0.98:
                return f"the imagined latent differs from the CPU's (only {agree:.0%} of its variables agree)"
        elif not torch.allclose(value, want, rtol=rtol, atol=atol):
            worst = (value - want).abs().max().item()
            return f"{key.replace('_', ' ')} differs from the CPU's by up to {worst:.3g}"
    return None


set_mps_check(mps_self_check)
