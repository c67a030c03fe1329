"""Speed measurements, all in one run on one device (ratios from the same run are what to trust
on a shared, noisy machine; never assert a time in a unit test).

    training step time of each world model at the experiment's batch and sequence length
    imagination throughput of the Transformer: KV cache vs full recompute, and of the RSSM
    attention-cost sweep: dynamics-only training step vs sequence length, Transformer vs GRU
"""

from __future__ import annotations

import json
import platform
import time

import torch

from .config import ExperimentConfig
from .train import _sync


def device_name(device: torch.device) -> str:
    """A human name for the device: the GPU model, or the CPU model and thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {name}, {torch.get_num_threads()} threads"


def _median_ms(fn, repeats: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return times[len(times) // 2]


def train_step_ms(model, batch: dict, lr: float = 1e-4, repeats: int = 10, warmup: int = 3) -> float:
    """Median wall time of one full training step (loss, backward, Adam) on a fixed batch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def step():
        loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _median_ms(step, repeats, warmup, model.device)


@torch.no_grad()
def recompute_imagine(model, state_obs: torch.Tensor, actions_ctx: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Transformer imagination WITHOUT a cache: every step re-runs the whole token sequence.
    Same outputs as the cached `imagine` (the tests check it), for the speed comparison."""
    z = model.encode(state_obs)
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
def imagination_fps(model, obs: torch.Tensor, actions: torch.Tensor, horizon: int, cached: bool = True,
                    repeats: int = 3) -> float:
    """Imagined frames (latents, no decoding) per second for a batch, context from obs."""
    model.eval()
    B, C = obs.shape[:2]
    fut = torch.randint(model.num_actions, (B, horizon), generator=torch.Generator().manual_seed(0)).to(obs.device)
    if cached:
        fn = lambda: model.imagine(model.observe(obs, actions[:, : C - 1]), fut)  # noqa: E731
    else:
        fn = lambda: recompute_imagine(model, obs, actions[:, : C - 1], fut)  # noqa: E731
    ms = _median_ms(fn, repeats, 1, obs.device)
    return B * horizon / (ms / 1000)


def attention_cost_sweep(cfg: ExperimentConfig, seq_lens=(16, 64, 256, 1024), batch: int = 8,
                         repeats: int = 5, warmup: int = 2, device=None) -> dict:
    """Dynamics-only training step (forward + backward, no conv) vs sequence length.

    Transformer: cfg-sized TransformerDynamics with a window covering the whole sequence, so
    attention is full and its cost grows with length^2. GRU: the RSSM's recurrence (img_step and
    prior head) over the same length, whose cost grows linearly but cannot run in parallel.
    """
    from .rssm import RSSMWorldModel
    from .transformer import TransformerDynamics

    device = torch.device(device) if device is not None else cfg.resolve_device()
    torch.manual_seed(cfg.seed)
    A = 18  # Boxing's action count; the sweep times the backbone, not the data
    rssm = RSSMWorldModel.from_config(cfg.replace(amp="off"), num_actions=A, device=device)
    out = {"seq_lens": list(seq_lens), "batch": batch, "transformer_ms": [], "gru_ms": [],
           "device": device_name(device), "used_seq_len": cfg.seq_len}
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
        out["transformer_ms"].append(_median_ms(tf_step, repeats, warmup, device))
        out["gru_ms"].append(_median_ms(gru_step, repeats, warmup, device))
    return out


def run_benchmark(cfg: ExperimentConfig | None = None, horizons=(10, 50, 200), sweep: bool = True,
                  progress: bool = True) -> dict:
    """Everything above in one run; returns a JSON-ready dict that names the device."""
    from .data import load_or_collect
    from .rssm import RSSMWorldModel
    from .transformer import TransformerWorldModel

    cfg = cfg or ExperimentConfig.from_env()
    device = cfg.resolve_device()
    data = load_or_collect(cfg, progress=progress, verbose=progress)
    train, _ = data.split(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    batch = {k: v.to(device) for k, v in train.sample(cfg.batch_size, cfg.seq_len, g).items()}
    ctx = train.sample(16, cfg.context, g)
    obs, act = ctx["obs"].to(device), ctx["action"].to(device)
    res = {"device": device_name(device), "torch": str(torch.__version__), "batch": cfg.batch_size,
           "seq_len": cfg.seq_len, "amp": str(cfg.resolve_amp_dtype(device)), "train_step_ms": {},
           "imagine_frames_per_s": {"transformer_cached": {}, "transformer_recompute": {}, "rssm": {}}}
    models = {"transformer": TransformerWorldModel.from_config(cfg, data.num_actions),
              "rssm": RSSMWorldModel.from_config(cfg, data.num_actions)}
    for name, m in models.items():
        res["train_step_ms"][name] = train_step_ms(m, batch)
    for amp in ("off", "bf16"):  # the same step with and without mixed precision on the conv parts
        m = TransformerWorldModel.from_config(cfg.replace(amp=amp), data.num_actions)
        res["train_step_ms"][f"transformer_amp_{amp}"] = train_step_ms(m, batch)
    res["ratio_transformer_over_rssm_step"] = res["train_step_ms"]["transformer"] / res["train_step_ms"]["rssm"]
    fps = res["imagine_frames_per_s"]
    for H in horizons:
        fps["transformer_cached"][H] = imagination_fps(models["transformer"], obs, act, H, cached=True)
        fps["transformer_recompute"][H] = imagination_fps(models["transformer"], obs, act, H, cached=False)
        fps["rssm"][H] = imagination_fps(models["rssm"], obs, act, H, cached=True)
    res["kv_cache_speedup"] = {H: res["imagine_frames_per_s"]["transformer_cached"][H]
                               / res["imagine_frames_per_s"]["transformer_recompute"][H] for H in horizons}
    if sweep:
        res["attention_cost"] = attention_cost_sweep(cfg, device=device)
    return json.loads(json.dumps(res))  # plain JSON types (int keys become strings)
