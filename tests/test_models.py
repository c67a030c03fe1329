"""The two world models: causality, KV-cache exactness, straight-through gradients, unimix,
the RSSM's prior/posterior split, overfitting a batch, one training step, the shared interface."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_ACTIONS, make_dataset, tiny_config

from wmhelpers.models.latent import straight_through_sample, unimix_logits
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.models.vae import CategoricalVAE
from wmhelpers.training.loop import train_world_model
from wmhelpers.training.step import make_optimizer

KINDS = {"transformer": TransformerWorldModel, "rssm": RSSMWorldModel}
V, K = 32, 32
D = V * K


def _model(kind, cfg=None, **overrides):
    cfg = cfg or tiny_config(**overrides)
    return KINDS[kind].from_config(cfg, NUM_ACTIONS, device="cpu")


def _one_hot_latents(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(K, (B, T, V), generator=g), K).float().flatten(-2)


def _actions(B, T, seed):
    return torch.randint(NUM_ACTIONS, (B, T), generator=torch.Generator().manual_seed(seed))


def _frames(B, T, seed):
    return torch.rand(B, T, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _assert_one_hot(latent, atol=0.0):
    """32 one-hot variables; exact for mode latents. Straight-through samples are one_hot + p - p,
    which rounds the 1 to within an ulp or so, hence atol for those."""
    v = latent.reshape(*latent.shape[:-1], V, K)
    hard = v.round()
    assert ((hard == 0) | (hard == 1)).all()
    assert (hard.sum(-1) == 1).all()
    assert (v - hard).abs().max() <= atol


@pytest.fixture(scope="module")
def tf():
    torch.manual_seed(0)
    return _model("transformer").eval()


@pytest.fixture(scope="module")
def small_batch():
    data = make_dataset([10, 12, 9], moving_square=True, seed=3)
    out = data.fixed_windows(2, 6, seed=0)
    out.pop("start")
    out["reward"] = out["reward"] % 3 - 1  # Boxing-like rewards in {-1, 0, 1} (not the row index)
    return out


# --------------------------------------------------------------------------------------------
# Transformer: causality and the KV cache
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [6, 12], ids=["within_window", "beyond_window"])  # window = 2*seq_len = 16 tokens
@pytest.mark.parametrize("t", [0, 2, 4])
def test_transformer_outputs_ignore_the_future(tf, T, t):
    dyn = tf.dynamics
    assert not dyn.training
    z, a = _one_hot_latents(2, T, seed=1), _actions(2, T, seed=2)
    with torch.no_grad():
        base = dyn(z, a)
        for k in sorted({1, 2, T - 1 - t}):
            if t + k >= T:
                continue
            z2 = z.clone()
            z2[:, t + k] = _one_hot_latents(2, 1, seed=10 + k)[:, 0]
            a2 = a.clone()
            a2[:, t + k] = (a[:, t + k] + 1) % NUM_ACTIONS
            for changed in (dyn(z2, a), dyn(z, a2)):
                for key in ("next_logits", "reward", "cont_logit", "cont"):
                    assert torch.equal(changed[key][:, : t + 1], base[key][:, : t + 1]), (key, k)
                # the future itself does change (the test can see a difference)
                assert not torch.equal(changed["next_logits"][:, t + k], base["next_logits"][:, t + k])


@pytest.mark.parametrize("t", [0, 3])
def test_transformer_action_and_latent_at_t_matter_at_t(tf, t):
    dyn = tf.dynamics
    z, a = _one_hot_latents(2, 6, seed=3), _actions(2, 6, seed=4)
    a2 = a.clone()
    a2[:, t] = (a[:, t] + 1) % NUM_ACTIONS
    z2 = z.clone()
    z2[:, t] = _one_hot_latents(2, 1, seed=5)[:, 0]
    with torch.no_grad():
        base, by_a, by_z = dyn(z, a), dyn(z, a2), dyn(z2, a)
    for other in (by_a, by_z):
        assert not torch.allclose(other["next_logits"][:, t], base["next_logits"][:, t])
        assert torch.equal(other["next_logits"][:, :t], base["next_logits"][:, :t])


def test_sliding_window_spans_exactly_window_tokens():
    """One layer, window W = 16 tokens: the output at a_t (position 2t+1) reads positions
    2t+1-15 .. 2t+1, so z_{t-7} (distance 15) matters and a_{t-8} (distance 16) does not."""
    from wmhelpers.models.transformer import TransformerDynamics

    torch.manual_seed(0)
    dyn = TransformerDynamics(V, K, NUM_ACTIONS, dim=32, layers=1, heads=2, dropout=0.0, window=16,
                              hidden=32).eval()
    T, t = 12, 10
    z, a = _one_hot_latents(2, T, seed=11), _actions(2, T, seed=12)
    a_far = a.clone()
    a_far[:, t - 8] = (a[:, t - 8] + 1) % NUM_ACTIONS
    z_far = z.clone()
    z_far[:, t - 8] = _one_hot_latents(2, 1, seed=13)[:, 0]
    z_near = z.clone()
    z_near[:, t - 7] = _one_hot_latents(2, 1, seed=14)[:, 0]
    with torch.no_grad():
        base = dyn(z, a)["next_logits"][:, t]
        assert torch.allclose(dyn(z, a_far)["next_logits"][:, t], base, atol=1e-6, rtol=0)
        assert torch.allclose(dyn(z_far, a)["next_logits"][:, t], base, atol=1e-6, rtol=0)
        assert not torch.allclose(dyn(z_near, a)["next_logits"][:, t], base, atol=1e-4)


def test_attention_maps_are_causal(tf):
    maps = tf.dynamics.attention_maps(_one_hot_latents(1, 5, seed=6), _actions(1, 5, seed=7))
    L = 10
    assert maps.shape == (2, 1, 2, L, L)
    future = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
    assert (maps[..., future] == 0).all()
    assert torch.allclose(maps.sum(-1), torch.ones(2, 1, 2, L))


@pytest.mark.parametrize("C,H", [(1, 4), (4, 3), (4, 10), (10, 8)])
@pytest.mark.parametrize("sample", [False, True], ids=["mode", "sampled"])
def test_kv_cache_imagination_equals_full_recompute(tf, C, H, sample):
    """observe + imagine (two new tokens per step, cached keys/values) == the whole token sequence
    recomputed at once, also past the training window (window = 16 tokens; (4, 10) is 28 tokens,
    (10, 8) even prefills more than a window)."""
    window = tf.dynamics.window
    B = 2
    obs, act = _frames(B, C, seed=C), _actions(B, C - 1 + H, seed=H)
    gen = torch.Generator().manual_seed(0) if sample else None
    state = tf.observe(obs, act[:, : C - 1])
    im = tf.imagine(state, act[:, C - 1 :], sample=sample, generator=gen)
    z = torch.cat([state["latents"], im["latent"][:, :-1]], 1)  # z_0 .. z_{C+H-2}
    assert z.shape == (B, C + H - 1, D)
    with torch.no_grad():
        full = tf.dynamics(z, act)
    for key in ("next_logits", "reward", "cont"):
        assert torch.allclose(im[key], full[key][:, C - 1 :], atol=1e-5, rtol=0), key
    if (C, H) == (4, 10):
        assert 2 * (C + H) > window


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_imagine_leaves_the_state_reusable(kind):
    model = _model(kind).eval()
    obs, act = _frames(2, 4, seed=1), _actions(2, 3 + 5, seed=2)
    state = model.observe(obs, act[:, :3])
    first = model.imagine(state, act[:, 3:])
    second = model.imagine(state, act[:, 3:])
    for key in ("latent", "reward", "cont", "next_logits"):
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_imagination_continues_from_the_state_it_returns(kind):
    """Imagining 2 steps, then 4 more from the returned state, is imagining 6 steps at once (the play panel
    steps this way)."""
    model = _model(kind).eval()
    obs, act = _frames(2, 4, seed=3), _actions(2, 3 + 6, seed=4)
    state = model.observe(obs, act[:, :3])
    whole = model.imagine(state, act[:, 3:])
    head = model.imagine(state, act[:, 3:5])
    tail = model.imagine(head["state"], act[:, 5:])
    for key in ("latent", "reward", "cont"):
        assert torch.equal(torch.cat([head[key], tail[key]], 1), whole[key]), key


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_first_imagined_step_is_the_teacher_forced_prediction(kind):
    model = _model(kind).eval()
    C = 5
    obs, act = _frames(2, C, seed=3), _actions(2, C, seed=4)
    with torch.no_grad():
        tf_out = model.teacher_forced(obs, act, sample=False)
    state = model.observe(obs, act[:, : C - 1])
    im = model.imagine(state, act[:, C - 1 :])
    assert torch.allclose(im["next_logits"][:, 0], tf_out["next_logits"][:, C - 1], atol=1e-5, rtol=0)
    assert torch.allclose(im["reward"][:, 0], tf_out["reward"][:, C - 1], atol=1e-5, rtol=0)
    # and the context latents are the posterior modes the teacher-forced pass used
    assert torch.equal(state["latents"], tf_out["latent"])


# --------------------------------------------------------------------------------------------
# The categorical latent
# --------------------------------------------------------------------------------------------
def test_straight_through_value_is_one_hot_and_gradient_is_the_probabilities():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, V, K, generator=g, requires_grad=True)
    weights = torch.randn(3, V, K, generator=g)
    z = straight_through_sample(logits, generator=torch.Generator().manual_seed(1))
    _assert_one_hot(z.detach().flatten(-2), atol=1e-6)
    (z * weights).sum().backward()
    st_grad = logits.grad.clone()
    logits.grad = None
    (logits.softmax(-1) * weights).sum().backward()
    assert torch.allclose(st_grad, logits.grad, atol=1e-6)
    assert st_grad.abs().sum() > 0


def test_vae_loss_trains_the_encoder_through_the_token():
    torch.manual_seed(0)
    vae = CategoricalVAE(conv_widths=(8, 8, 8, 8))
    loss, terms = vae.loss(_frames(1, 4, seed=0)[0])
    assert math.isfinite(terms["recon_loss"])
    loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for part in (vae.encoder, vae.to_logits, vae.decoder):
        convs = [m for m in part.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d,
                                                             torch.nn.Linear))]
        assert convs
        for m in convs:
            assert m.weight.grad.abs().sum() > 0, m


@pytest.mark.parametrize("scale", [50.0, 1e4, 1e30])
def test_unimix_floor_with_extreme_logits(scale):
    logits = torch.zeros(4, V, K)
    logits[..., 0] = scale  # one class takes (almost) everything
    logits[1] = -logits[1]  # one class gets nothing
    logits[2, :, 5] = -scale
    probs = unimix_logits(logits, 0.01).exp()
    floor = 0.01 / K
    assert torch.isfinite(probs).all()
    assert (probs >= floor * (1 - 1e-5)).all()
    assert torch.allclose(probs.sum(-1), torch.ones(4, V), atol=1e-5)
    assert probs[0, 0, 0].item() == pytest.approx(0.99 + floor, abs=1e-5)
    # without unimix the floor is gone
    assert unimix_logits(logits, 0.0).exp().min() < floor


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_categorical_of_the_models_keeps_the_floor(kind):
    model = _model(kind).eval()
    floor = 0.01 / K
    with torch.no_grad():
        # make every logit extreme: scale the last linear layer of each head and the encoder
        model.vae.to_logits.weight.mul_(1e4)
        model.vae.to_logits.bias.mul_(1e4)
        heads = [model.dynamics.next_head] if kind == "transformer" else [model.prior_head]
        for h in heads:
            h[-1].weight.mul_(1e4)
            h[-1].bias.mul_(1e4)
        out = model.teacher_forced(_frames(2, 4, seed=0), _actions(2, 4, seed=1), sample=False)
    for key in ("post_logits", "next_logits"):
        p = out[key].exp()
        assert p.shape == (2, 4, V, K)
        assert p.max() > 0.98  # the logits really are extreme
        assert (p >= floor * (1 - 1e-5)).all(), key


# --------------------------------------------------------------------------------------------
# RSSM: prior versus posterior
# --------------------------------------------------------------------------------------------
@pytest.fixture
def rssm_with_history():
    model = _model("rssm").eval()
    with torch.no_grad():  # U starts at zero; give the posterior a real dependence on h
        model.post_from_h.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    return model


@pytest.mark.parametrize("t", [1, 3])
def test_rssm_frame_t_enters_posterior_not_prior(rssm_with_history, t):
    model = rssm_with_history
    T = 5
    obs, act = _frames(2, T, seed=0), _actions(2, T, seed=1)
    obs2 = obs.clone()
    obs2[:, t] = _frames(2, 1, seed=9)[:, 0]
    with torch.no_grad():
        a, b = model.teacher_forced(obs, act, sample=False), model.teacher_forced(obs2, act, sample=False)
    assert not torch.allclose(a["post_logits"][:, t], b["post_logits"][:, t])  # q(z_t | h_t, o_t) reads o_t
    assert torch.equal(a["next_logits"][:, t - 1], b["next_logits"][:, t - 1])  # p(z_t | h_t) does not
    for key in ("post_logits", "latent", "next_logits", "reward", "cont"):
        assert torch.equal(a[key][:, :t], b[key][:, :t]), key  # nothing earlier moves
    assert not torch.allclose(a["next_logits"][:, t], b["next_logits"][:, t])  # the prior of t+1 sees o_t
    assert not torch.allclose(a["post_logits"][:, t + 1], b["post_logits"][:, t + 1])  # through h_{t+1}


def test_rssm_action_t_enters_prior_of_t_plus_1_only(rssm_with_history):
    model = rssm_with_history
    t, T = 2, 5
    obs, act = _frames(2, T, seed=2), _actions(2, T, seed=3)
    act2 = act.clone()
    act2[:, t] = (act[:, t] + 1) % NUM_ACTIONS
    with torch.no_grad():
        a, b = model.teacher_forced(obs, act, sample=False), model.teacher_forced(obs, act2, sample=False)
    assert torch.equal(a["post_logits"][:, : t + 1], b["post_logits"][:, : t + 1])
    assert torch.equal(a["next_logits"][:, :t], b["next_logits"][:, :t])
    assert not torch.allclose(a["next_logits"][:, t], b["next_logits"][:, t])


def test_rssm_posterior_starts_as_the_shared_encoder():
    model = _model("rssm").eval()  # U = 0 at initialisation: q is exactly the VAE's posterior
    obs = _frames(2, 4, seed=5)
    with torch.no_grad():
        out = model.teacher_forced(obs, _actions(2, 4, seed=6), sample=False)
        assert torch.allclose(out["post_logits"], model.vae.logits(obs), atol=1e-6)


def test_rssm_imagine_shapes(rssm_with_history):
    model = rssm_with_history
    state = model.observe(_frames(3, 4, seed=7), _actions(3, 3, seed=8))
    assert state["h"].shape == (3, model.deter) and state["latent"].shape == (3, D)
    im = model.imagine(state, _actions(3, 6, seed=9))
    assert im["latent"].shape == (3, 6, D) and im["next_logits"].shape == (3, 6, V, K)
    assert im["reward"].shape == (3, 6) and im["cont"].shape == (3, 6)
    _assert_one_hot(im["latent"])


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_overfits_one_small_batch(kind, small_batch):
    """150 Adam steps on one fixed batch of 2 x 6 frames: the total loss falls > 10x
    (measured 25-36x for both models over seeds 0-2; the start, ~1,600-2,200, is mostly
    reconstruction)."""
    torch.manual_seed(0)
    model = _model(kind)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    totals, rewards = [], []
    for _ in range(150):
        loss, terms = model.loss(small_batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(terms["total"])
        rewards.append(terms["reward_loss"])
    assert all(math.isfinite(x) for x in totals)
    start, end = sum(totals[:3]) / 3, sum(totals[-10:]) / 10
    assert end < start / 10, (start, end)
    assert sum(rewards[-10:]) / 10 < sum(rewards[:3]) / 3 / 2  # the reward head learns too


GROUPS = {
    "transformer": ("vae.encoder", "vae.to_logits", "vae.decoder", "dynamics.z_embed", "dynamics.a_embed",
                    "dynamics.blocks", "dynamics.ln_f", "dynamics.next_head", "dynamics.reward_head",
                    "dynamics.cont_head"),
    "rssm": ("vae.encoder", "vae.to_logits", "vae.decoder", "img_in", "gru", "prior_head", "post_from_h",
             "reward_head", "cont_head"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_training_step(kind, small_data):
    cfg = tiny_config()
    model = KINDS[kind].from_config(cfg, NUM_ACTIONS, device="cpu").train()
    batch = small_data.sample(2, 6, generator=torch.Generator().manual_seed(0))
    opt = make_optimizer(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss, terms = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(terms) >= {"total", "recon_loss", "dyn_loss", "rep_loss", "reward_loss", "cont_loss", "kl"}
    assert all(math.isfinite(v) for v in terms.values())
    assert terms["total"] == pytest.approx(float(loss.detach()))
    opt.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    for name, p in params.items():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), name
    for group in GROUPS[kind]:
        members = [n for n in params if n.startswith(group + ".")]
        assert members, group
        assert sum(params[n].grad.abs().sum() for n in members) > 0, f"{group} gets a zero gradient"
    opt.step()
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("vae.encoder.") for n in moved) and any(n.startswith(GROUPS[kind][3]) for n in moved)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_train_world_model_two_steps(kind, small_data):
    cfg = tiny_config(train_steps=2, log_every=1, val_windows=2, seq_len=6, batch_size=2, val_episodes=2)
    train, val = small_data.split(cfg)
    model = KINDS[kind].from_config(cfg, NUM_ACTIONS, device="cpu")
    hist = train_world_model(model, train, val, cfg, progress=False)
    assert hist["kind"] == kind and hist["step"] == [0, 1, 2]
    # train terms are means since the previous record, so there is none at step 0
    assert len(hist["train"]["total"]) == 2 and len(hist["val"]["total"]) == 3
    assert all(math.isfinite(v) for v in hist["val"]["total"] + hist["val_next_frame_mse"])
    assert not model.training


# --------------------------------------------------------------------------------------------
# The shared interface
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_interface_shapes(kind):
    model = _model(kind).eval()
    B, C, H = 3, 4, 5
    obs, act = _frames(B, C, seed=0), _actions(B, C - 1 + H, seed=1)
    state = model.observe(obs, act[:, : C - 1])
    assert state["latent"].shape == (B, D)
    assert state["latents"].shape == (B, C, D)
    _assert_one_hot(state["latents"])
    im = model.imagine(state, act[:, C - 1 :])
    assert im["latent"].shape == (B, H, D)
    _assert_one_hot(im["latent"])
    assert im["reward"].shape == (B, H) and im["cont"].shape == (B, H)
    assert ((im["cont"] >= 0) & (im["cont"] <= 1)).all()
    assert im["next_logits"].shape == (B, H, V, K)
    frames = model.decode(im["latent"])
    assert frames.shape == (B, H, 3, 64, 64) and frames.dtype == torch.float32
    assert frames.min() >= 0 and frames.max() <= 1
    assert model.decode(state["latent"]).shape == (B, 3, 64, 64)
    # sampled rollouts are one-hot too and reproducible with a generator
    s1 = model.imagine(state, act[:, C - 1 :], sample=True, generator=torch.Generator().manual_seed(3))
    s2 = model.imagine(state, act[:, C - 1 :], sample=True, generator=torch.Generator().manual_seed(3))
    _assert_one_hot(s1["latent"], atol=1e-6)
    assert torch.equal(s1["latent"], s2["latent"])
    # the neutral one-step prediction and the posterior encoding
    pred = model.predict_next(_frames(B, C, seed=2), act[:, :C])
    assert pred.shape == (B, C - 1, D)
    assert model.encode(obs, act[:, : C - 1]).shape == (B, C, D)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("n_actions", [2, 4, 0])
def test_observe_rejects_wrong_number_of_actions(kind, n_actions):
    model = _model(kind).eval()
    with pytest.raises(ValueError, match="3 actions"):
        model.observe(_frames(2, 4, seed=0), _actions(2, n_actions, seed=1))
