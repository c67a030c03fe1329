"""Imagination with the static KV cache: exactness against recompute (also far past the window),
buffers written in place at fixed shapes, no host syncs, the CUDA-graph path's logic (with the
capture faked on CPU) and its fallback to eager with one warning; and the mask helper."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_ACTIONS, tiny_config

from wmhelpers import cuda_graphs
from wmhelpers.models import masking
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import KVCache, TransformerWorldModel
from wmhelpers.runs.benchmark import recompute_latents

V, K = 32, 32


def _frames(B, T, seed):
    return torch.rand(B, T, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _actions(B, T, seed):
    return torch.randint(NUM_ACTIONS, (B, T), generator=torch.Generator().manual_seed(seed))


def recompute_imagine(model, obs, actions_ctx, actions):
    """The cache-free reference from context frames: `recompute_latents` from the encoded context."""
    return recompute_latents(model, model.encode(obs), actions_ctx, actions)


@pytest.fixture(scope="module")
def tf():
    """Tiny trained-free model; window = 2 * seq_len = 16 tokens, so the ring has 17 slots."""
    return TransformerWorldModel.from_config(tiny_config(), NUM_ACTIONS, device="cpu").eval()


# --------------------------------------------------------------------------------------------
# Exactness: cached == recomputed
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("C,H", [(1, 5), (3, 1), (4, 6), (4, 30), (12, 9)],
                         ids=["no_context", "one_step", "within_window", "ring_wraps_4x", "prefill_beyond_window"])
def test_cached_latents_equal_recompute(tf, C, H):
    """The ring buffer of window + 1 slots gives the very latents of re-running the whole
    sequence each step: (4, 30) is 68 tokens through a 16-token window, (12, 9) prefills 22."""
    B = 3
    obs, act = _frames(B, C, seed=C), _actions(B, C - 1 + H, seed=H)
    state = tf.observe(obs, act[:, : C - 1])
    cached = tf.imagine(state, act[:, C - 1 :])
    recomputed = recompute_imagine(tf, obs, act[:, : C - 1], act[:, C - 1 :])
    assert recomputed.shape == cached["latent"].shape == (B, H, V * K)
    assert torch.equal(cached["latent"], recomputed)
    # the logits too, up to float summation order (the ring holds keys out of position order)
    z = torch.cat([state["latents"], cached["latent"][:, :-1]], 1)
    with torch.no_grad():
        full = tf.dynamics(z, act)
    assert torch.allclose(cached["next_logits"], full["next_logits"][:, C - 1 :], atol=1e-5, rtol=0)


def test_sampled_imagination_uses_the_cache_exactly(tf):
    """Sampled latents: the teacher-forced pass over the sampled sequence predicts the same logits."""
    C, H = 4, 20
    obs, act = _frames(2, C, seed=1), _actions(2, C - 1 + H, seed=2)
    state = tf.observe(obs, act[:, : C - 1])
    im = tf.imagine(state, act[:, C - 1 :], sample=True, generator=torch.Generator().manual_seed(0))
    z = torch.cat([state["latents"], im["latent"][:, :-1]], 1)
    with torch.no_grad():
        full = tf.dynamics(z, act)
    assert torch.allclose(im["next_logits"], full["next_logits"][:, C - 1 :], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# Static buffers
# --------------------------------------------------------------------------------------------
def test_cache_buffers_are_static_and_written_in_place(tf):
    dyn = tf.dynamics
    state = tf.observe(_frames(2, 12, seed=3), _actions(2, 11, seed=4))  # 22 tokens > 17 slots
    cache = state["cache"]
    assert isinstance(cache, KVCache)
    shape = (2, dyn.heads, dyn.window + 1, dyn.head_dim)
    assert all(t.shape == shape for t in cache.keys + cache.values)
    # the ring holds exactly the last window + 1 positions, each at slot position mod slots
    assert sorted(cache.pos.tolist()) == list(range(22 - 17, 22))
    assert all(int(cache.pos[p % 17]) == p for p in range(5, 22))
    assert int(cache.next_pos) == 22
    cache = cache.clone()
    ptrs = [t.data_ptr() for t in cache.tensors()]
    z = state["latent"]
    with torch.no_grad():
        for k in range(3):
            dyn.step(cache, z, _actions(2, 1, seed=k)[:, 0])
    assert [t.data_ptr() for t in cache.tensors()] == ptrs
    assert all(t.shape == shape for t in cache.keys + cache.values)
    assert int(cache.next_pos) == 28 and sorted(cache.pos.tolist()) == list(range(28 - 17, 28))


def test_imagine_leaves_the_state_cache_untouched(tf):
    state = tf.observe(_frames(2, 4, seed=5), _actions(2, 3, seed=6))
    before = [t.clone() for t in state["cache"].tensors()]
    tf.imagine(state, _actions(2, 25, seed=7))
    assert all(torch.equal(a, b) for a, b in zip(before, state["cache"].tensors()))


def test_imagination_loop_asks_the_host_nothing(tf, monkeypatch):
    """No .item(), .tolist(), .cpu(), int() or bool() of a tensor inside imagination: each would
    stall a GPU until its queue drains (and would break CUDA-graph capture)."""
    state = tf.observe(_frames(2, 4, seed=8), _actions(2, 3, seed=9))
    fut = _actions(2, 12, seed=10)

    def boom(*args, **kwargs):
        raise AssertionError("host sync inside imagination")

    for name in ("item", "tolist", "cpu", "__int__", "__bool__", "__index__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, boom)
    tf.imagine(state, fut)
    tf.imagine(state, fut, sample=True, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------------------------
# The CUDA-graph path: its logic with a fake capture on CPU, and the fallback
# --------------------------------------------------------------------------------------------
class _FakeGraph:
    """Stands in for a captured CUDA graph: replay() re-runs the step into the same output tensors."""

    def __init__(self, step):
        self.step = step

    def replay(self):
        for key, t in self.step().items():
            self.out[key].copy_(t)


def _fake_capture(captures: list):
    def capture(step, device, warmup=0):
        captures.append(device)
        for _ in range(warmup):  # the real warm-up runs the step on the static buffers too
            step()
        graph = _FakeGraph(step)
        graph.out = {k: t.clone() for k, t in step().items()}
        return graph, graph.out
    return capture


def _graphs_on_cpu(monkeypatch, capture):
    """Route WorldModel.imagine through a fresh ImaginationGraphs that runs on the CPU with `capture`."""
    graphs = cuda_graphs.ImaginationGraphs(capture=capture, devices=("cpu",))
    monkeypatch.setattr(cuda_graphs, "IMAGINATION_GRAPHS", graphs)
    return graphs


@pytest.mark.parametrize("kind", ["transformer", "rssm"])
def test_graphed_rollout_equals_eager(kind, monkeypatch):
    """Static inputs, the new state fed back into the static state, outputs copied out after every
    replay: the graphed rollout must give what the eager loop gives (outputs and the state it ends
    in), leave the given state as it was, and reuse one capture per batch size."""
    cls = TransformerWorldModel if kind == "transformer" else RSSMWorldModel
    model = cls.from_config(tiny_config(), NUM_ACTIONS, device="cpu").eval()
    C, H = 4, 25
    obs, act = _frames(3, C, seed=11), _actions(3, C - 1 + H, seed=12)
    state = model.observe(obs, act[:, : C - 1])
    eager = model.imagine(state, act[:, C - 1 :])  # the CPU: eager
    captures = []
    _graphs_on_cpu(monkeypatch, _fake_capture(captures))
    before = {k: v.clone() for k, v in state.items()}
    graphed = model.imagine(state, act[:, C - 1 :])
    again = model.imagine(state, act[:, C - 1 :])
    assert len(captures) == 1
    for k, v in before.items():
        assert all(torch.equal(a, b) for a, b in zip(_tensors(v), _tensors(state[k]))), k
    for key in ("latent", "reward", "cont", "next_logits"):
        assert torch.equal(graphed[key], eager[key]), key
        assert torch.equal(again[key], eager[key]), key
    for k in eager["state"]:
        assert all(torch.equal(a, b) for a, b in zip(_tensors(graphed["state"][k]), _tensors(eager["state"][k]))), k
    model.imagine(model.observe(obs[:2], act[:2, : C - 1]), act[:2, C - 1 :])  # another batch size: its own graph
    assert len(captures) == 2


def _tensors(value):
    return value.tensors() if isinstance(value, KVCache) else [value]


def test_graph_failure_falls_back_to_eager_with_one_warning(tf, monkeypatch):
    attempts = []

    def failing_capture(step, device, warmup=0):
        attempts.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    graphs = _graphs_on_cpu(monkeypatch, failing_capture)
    C, H = 4, 6
    obs, act = _frames(2, C, seed=13), _actions(2, C - 1 + H, seed=14)
    state = tf.observe(obs, act[:, : C - 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tf.imagine(state, act[:, C - 1 :])
        second = tf.imagine(state, act[:, C - 1 :])
    graph_warnings = [w for w in caught if "CUDA-graph" in str(w.message)]
    assert len(graph_warnings) == 1 and issubclass(graph_warnings[0].category, RuntimeWarning)
    assert len(attempts) == 1  # tried once, then remembered
    assert "failed" in graphs.backend("cpu") and "failed" in cuda_graphs.imagination_backend("cpu")
    recomputed = recompute_imagine(tf, obs, act[:, : C - 1], act[:, C - 1 :])
    assert torch.equal(first["latent"], recomputed) and torch.equal(second["latent"], recomputed)


def test_backend_names_the_path():
    assert cuda_graphs.imagination_backend("cpu") == "eager (cpu)"
    if not cuda_graphs.IMAGINATION_GRAPHS.failures:
        assert cuda_graphs.imagination_backend("cuda").startswith("CUDA graph")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_imagination_equals_recompute_on_gpu():
    model = TransformerWorldModel.from_config(tiny_config(device="cuda"), NUM_ACTIONS, device="cuda").eval()
    C, H = 4, 30
    obs, act = _frames(2, C, seed=15).cuda(), _actions(2, C - 1 + H, seed=16).cuda()
    state = model.observe(obs, act[:, : C - 1])
    cached = model.imagine(state, act[:, C - 1 :])
    assert not cuda_graphs.IMAGINATION_GRAPHS.failures, cuda_graphs.IMAGINATION_GRAPHS.failures
    assert torch.equal(cached["latent"], recompute_imagine(model, obs, act[:, : C - 1], act[:, C - 1 :]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_imagination_of_the_rssm_equals_eager_on_gpu(monkeypatch):
    model = RSSMWorldModel.from_config(tiny_config(device="cuda"), NUM_ACTIONS, device="cuda").eval()
    C, H = 4, 30
    obs, act = _frames(2, C, seed=17).cuda(), _actions(2, C - 1 + H, seed=18).cuda()
    state = model.observe(obs, act[:, : C - 1])
    graphed = model.imagine(state, act[:, C - 1 :])
    assert not cuda_graphs.IMAGINATION_GRAPHS.failures, cuda_graphs.IMAGINATION_GRAPHS.failures
    monkeypatch.setattr(cuda_graphs.IMAGINATION_GRAPHS, "enabled", False)
    eager = model.imagine(state, act[:, C - 1 :])
    assert torch.equal(graphed["latent"], eager["latent"])
    assert torch.allclose(graphed["reward"], eager["reward"], atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# recompute_latents against a plain loop, and the mask
# --------------------------------------------------------------------------------------------
class _CountingDynamics(torch.nn.Module):
    """Predicts, at every action token a_t, class (class(z_t) + a_t) mod K for each variable.
    The rollout from class c with actions a_0, a_1, ... is then c + a_0, c + a_0 + a_1, ..."""

    def forward(self, z, action):
        cls = z.view(*z.shape[:-1], V, K).argmax(-1)
        nxt = (cls + action[..., None]) % K
        return {"next_logits": F.one_hot(nxt, K).float() * 10.0}


class _CountingModel(TransformerWorldModel):
    def __init__(self):
        torch.nn.Module.__init__(self)
        self.dynamics = _CountingDynamics()

    def encode(self, obs, actions=None):
        # frame i of the context -> every variable in class 3 * i (a known starting latent)
        B, C = obs.shape[:2]
        cls = (3 * torch.arange(C))[None, :, None].expand(B, C, V)
        return F.one_hot(cls, K).float().flatten(-2)


def test_recompute_latents_against_a_plain_loop():
    """Hand-computed: the last context frame (C=3) is class 6; each step adds its action."""
    model = _CountingModel()
    actions_ctx = torch.tensor([[1, 2], [0, 0]])
    future = torch.tensor([[5, 7, 30], [1, 1, 1]])
    latents = recompute_imagine(model, torch.zeros(2, 3, 3, 64, 64), actions_ctx, future)
    classes = latents.view(2, 3, V, K).argmax(-1)
    expected = [[6 + 5, 6 + 5 + 7, (6 + 5 + 7 + 30) % K], [7, 8, 9]]
    assert classes.tolist() == [[[c] * V for c in row] for row in expected]


def test_attention_mask_by_hand():
    pos = torch.arange(4)
    expected = torch.tensor([[1, 0, 0, 0],
                             [1, 1, 0, 0],
                             [0, 1, 1, 0],
                             [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(masking.attention_mask(pos, pos, 2), expected)
    # an empty cache slot is never read, whatever the window
    k_pos = torch.tensor([masking.EMPTY, 0, 1])
    assert not masking.attention_mask(torch.tensor([1, 2]), k_pos, 10**6)[:, 0].any()


def test_imagine_from_an_empty_cache_matches_teacher_forcing(tf):
    """No context at all: the first imagined step sees only z_0, a_0."""
    z0 = F.one_hot(torch.randint(K, (2, V), generator=torch.Generator().manual_seed(1)), K).float().flatten(-2)
    acts = _actions(2, 9, seed=2)
    state = {"cache": tf.dynamics.new_cache(2, "cpu"), "latent": z0}
    im = tf.imagine(state, acts)
    with torch.no_grad():
        full = tf.dynamics(torch.cat([z0[:, None], im["latent"][:, :-1]], 1), acts)
    assert torch.allclose(im["next_logits"], full["next_logits"], atol=1e-5, rtol=0)
