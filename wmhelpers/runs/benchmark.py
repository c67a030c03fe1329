"""Speed measurements, all in one run on one device (ratios from the same run are what to trust
on a shared, noisy machine; never assert a time in a unit test).

    training step time of each world model at the experiment's batch and sequence length
    imagination throughput: the Transformer with its KV cache vs full recompute, and the RSSM
        (`observe`, which encodes the context and fills the cache, is timed apart: it runs once
        per rollout whatever the horizon)
    kv_cache_speed: the same cached-vs-recompute comparison in a few seconds, for the notebook
    attention-cost sweep: dynamics-only training step vs sequence length, Transformer vs GRU

Every result names its device (`device.device_name`): a time means nothing without it.
"""

from __future__ import annotations

import json
import time

import torch

from ..config import ExperimentConfig
from ..data import cache_paths, load_or_collect
from ..device import device_name, median_ms, resolve_amp_dtype, seconds
from ..models.rssm import RSSMWorldModel
from ..models.transformer import TransformerDynamics, TransformerWorldModel, imagination_backend
from ..training.step import graphs_wanted, train_step_ms


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


@torch.no_grad()
def recompute_imagine(model, state_obs: torch.Tensor, actions_ctx: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """`recompute_latents` from context frames [B, C, 3, 64, 64]: the cache-free reference that
    the cached `imagine` must equal (tests/test_kv_cache.py checks it)."""
    return recompute_latents(model, model.encode(state_obs), actions_ctx, actions)


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
def imagination_fps(model, obs: torch.Tensor, actions: torch.Tensor, horizon: int, cached: bool = True,
                    repeats: int = 3) -> float:
    """Imagined frames (latents, no decoding) per second for a batch, context from obs.

    `observe` runs once, outside the clock: only the H imagined steps are timed. cached=False
    (Transformer only) times the cache-free `recompute_latents` from the same context latents."""
    model.eval()
    B, C = obs.shape[:2]
    fut = _future_actions(model, actions[:, :0], horizon, obs.device)
    state = model.observe(obs, actions[:, : C - 1])
    if cached:
        fn = lambda: model.imagine(state, fut)  # noqa: E731
    else:
        fn = lambda: recompute_latents(model, state["latents"], actions[:, : C - 1], fut)  # noqa: E731
    ms = median_ms(fn, repeats, 1, obs.device)
    return B * horizon / (ms / 1000)


@torch.no_grad()
def kv_cache_speed(model, obs: torch.Tensor, actions: torch.Tensor, horizon: int, budget_s: float = 5.0) -> dict:
    """Imagined steps per second of a Transformer world model with and without its KV cache,
    on the model's device, measured within about `budget_s` seconds; plus the exactness check.

    obs [B, C, 3, 64, 64]: the context frames. actions [B, >= C-1]: the C-1 actions between them,
    then the future actions to imagine with (any beyond those given are drawn at random, seeded).
    One imagined step is one latent of one sequence, so the batch counts; `observe` runs once
    outside the clock. The first call of each path is a warm-up (on a GPU it captures the CUDA
    graph); then cached and recompute calls alternate until the budget is spent, so a busy machine
    slows both alike, and the medians are compared.

    Returns {"cached_steps_per_s", "recompute_steps_per_s", "ratio" (cached / recompute),
    "exact" (cached latents == recomputed latents, bit for bit), "device", "backend", "horizon", "batch"}.
    """
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


def _num_actions_of_cached_data(cfg: ExperimentConfig) -> int:
    """The action count recorded with the cached dataset of cfg (no frames are loaded)."""
    meta_path = cache_paths(cfg)[1]
    try:
        return int(json.loads(meta_path.read_text())["num_actions"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"attention_cost_sweep needs the action count: pass num_actions=data.num_actions "
                         f"(no readable dataset metadata at {meta_path}: {err})") from None


def attention_cost_sweep(cfg: ExperimentConfig, seq_lens=None, batch: int = 8, repeats: int = 5,
                         warmup: int = 2, device=None, num_actions: int | None = None) -> dict:
    """Dynamics-only training step (forward + backward, no conv) vs sequence length.

    seq_lens: time steps to time, cfg.sweep_seq_lens unless given. num_actions: the data's action
    count (read from the cached dataset's metadata unless given; it only sizes an embedding).
    Transformer: cfg-sized TransformerDynamics with a window covering the whole sequence (2T
    tokens), so attention is full and its cost grows with length^2. GRU: the RSSM's recurrence
    (img_step and prior head) over the same length, whose cost grows linearly but cannot run in
    parallel.
    """
    seq_lens = tuple(cfg.sweep_seq_lens if seq_lens is None else seq_lens)
    A = num_actions if num_actions is not None else _num_actions_of_cached_data(cfg)
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

        # two warm-up calls: the first call at a new shape pays one-time kernel setup (measured here:
        # 150 ms instead of ~20 ms for the first Transformer point with a single warm-up)
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
           "seq_len": cfg.seq_len, "amp": str(resolve_amp_dtype(cfg.amp, device)),
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
    for H in horizons:
        fps["transformer_cached"][H] = imagination_fps(models["transformer"], obs, act, H, cached=True)
        fps["transformer_recompute"][H] = imagination_fps(models["transformer"], obs, act, H, cached=False)
        fps["rssm"][H] = imagination_fps(models["rssm"], obs, act, H, cached=True)
    res["kv_cache_speedup"] = {H: fps["transformer_cached"][H] / fps["transformer_recompute"][H] for H in horizons}
    # the notebook's quick version at the middle horizon, with its exactness check (cached == recomputed)
    res["kv_cache_speed"] = kv_cache_speed(models["transformer"], obs, act, horizons[len(horizons) // 2], budget_s=2.0)
    if sweep:
        res["attention_cost"] = attention_cost_sweep(cfg, device=device, num_actions=data.num_actions)
    return json.loads(json.dumps(res))  # plain JSON types (int keys become strings)
