"""The training step (training/step.py): no host syncs, and a CUDA-graph path whose logic is checked
on the CPU with a stand-in for the capture (a real capture needs a GPU: see the CUDA-only test)."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import NUM_ACTIONS, tiny_config

import wmhelpers as wm
from wmhelpers.models.latent import sample_one_hot
from wmhelpers.notebook_tools import describe
from wmhelpers.training import loop
from wmhelpers.training import step as ts


# ---- sampling without a host sync ---------------------------------------------------------------
def test_sample_one_hot_is_the_draw_multinomial_makes():
    """Same generator state -> the very index torch.multinomial(p, 1) picks, for every variable."""
    logits = torch.randn(3, 5, 32, 32, generator=torch.Generator().manual_seed(0))
    ours = sample_one_hot(logits, torch.Generator().manual_seed(7))
    probs = logits.softmax(-1).reshape(-1, 32)
    theirs = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(7)).reshape(3, 5, 32)
    assert torch.equal(ours.argmax(-1), theirs)
    assert torch.equal(ours.sum(-1), torch.ones(3, 5, 32))  # one-hot


def test_sample_one_hot_frequencies_follow_the_probabilities():
    p = torch.tensor([0.05, 0.15, 0.3, 0.5])
    draws = sample_one_hot(p.log().expand(40_000, 1, 4), torch.Generator().manual_seed(1))
    freq = draws.mean((0, 1))
    # binomial standard error at n=40,000 is at most 0.0025: 4 of them
    assert torch.allclose(freq, p, atol=0.01), freq


# ---- loss terms stay on the device ------------------------------------------------------------
@pytest.mark.parametrize("cls", [wm.RSSMWorldModel, wm.TransformerWorldModel])
def test_loss_terms_are_detached_tensors_equal_to_the_float_terms(cls, small_data):
    model = cls.from_config(tiny_config(), NUM_ACTIONS, device="cpu").train()
    batch = small_data.sample(2, 6, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    total, terms = model.loss_terms(batch)
    torch.manual_seed(3)
    _, floats = model.loss(batch)
    assert set(terms) == set(ts.TERMS)
    assert all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in terms.values())
    assert {k: float(v) for k, v in terms.items()} == floats
    assert total.requires_grad and float(total.detach()) == floats["total"]


# ---- the graph path, with a stand-in capture ----------------------------------------------------
def _fake_capture(calls):
    """Stands in for torch.cuda.graph: records nothing, and each replay runs the step again
    into the same output tensor, as a replayed graph writes into its captured outputs."""

    class Graph:
        def replay(self):
            out.copy_(step())

    def capture(step_fn, device, warmup=0):
        nonlocal step
        calls["captures"] += 1
        step = step_fn
        return Graph(), out

    out, step = torch.zeros(len(ts.TERMS)), None
    return capture


def _train(cls, data, steps, graphs, capture=None):
    cfg = tiny_config(train_seed=4)
    torch.manual_seed(0)
    model = cls.from_config(cfg, NUM_ACTIONS, device="cpu").train()
    step = ts.TrainStep(model, cfg, graphs=graphs, capture=capture)
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(5)
    terms = [step(data.sample(2, 6, g)) for _ in range(steps)]
    return model, step, torch.stack(terms)


@pytest.mark.parametrize("cls", [wm.RSSMWorldModel, wm.TransformerWorldModel])
def test_graph_path_trains_the_same_weights_as_eager(cls, small_data, monkeypatch):
    """Warm-up steps, capture, then replays on new batches copied into the fixed inputs: bit for
    bit the eager run. (A replay that kept reading the first batch, or a warm-up that skipped its
    update, would change the weights.)"""
    steps = ts.WARMUP_STEPS + 4
    eager, eager_step, eager_terms = _train(cls, small_data, steps, graphs=False)
    calls = {"captures": 0}
    graphed, graphed_step, graphed_terms = _train(cls, small_data, steps, graphs=True,
                                                  capture=_fake_capture(calls))
    assert calls["captures"] == 1 and graphed_step.replays == steps - ts.WARMUP_STEPS
    assert graphed_step.backend == "CUDA graph" and eager_step.backend == "eager"
    assert torch.equal(graphed_terms, eager_terms)
    for (name, a), b in zip(eager.named_parameters(), graphed.parameters()):
        assert torch.equal(a, b), name


def test_graph_outputs_are_copied_out_before_the_next_replay(small_data, monkeypatch):
    _, _, terms = _train(wm.TransformerWorldModel, small_data, ts.WARMUP_STEPS + 3, graphs=True,
                         capture=_fake_capture({"captures": 0}))
    replayed = terms[ts.WARMUP_STEPS:]
    assert not torch.equal(replayed[0], replayed[-1])  # each step returned its own terms


def test_a_failed_capture_warns_once_and_trains_eagerly_on(small_data, monkeypatch):
    monkeypatch.setattr(ts.TRAINING_GRAPHS, "failures", [])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)

    def broken(step, device, warmup=0):
        raise RuntimeError("operation not permitted when stream is capturing")

    steps = ts.WARMUP_STEPS + 3
    eager, _, _ = _train(wm.RSSMWorldModel, small_data, steps, graphs=False)
    with pytest.warns(RuntimeWarning, match="training eagerly") as caught:
        model, step, _ = _train(wm.RSSMWorldModel, small_data, steps, graphs=True, capture=broken)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert step.backend == "eager" and step.replays == 0
    assert "capture failed" in ts.training_backend(tiny_config(), "cuda")
    assert not ts.graphs_wanted(tiny_config(), "cuda")  # no second try in this process
    for a, b in zip(eager.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_graphs_are_tried_on_cuda_in_fp32_only():
    cfg = tiny_config()
    assert ts.graphs_wanted(cfg, "cuda") and not ts.graphs_wanted(cfg, "cpu")
    assert not ts.graphs_wanted(cfg.replace(amp="bf16"), "cuda")
    assert "autocast" in ts.training_backend(cfg.replace(amp="bf16"), "cuda")
    assert ts.training_backend(cfg, "cpu") == "eager (cpu)"


def test_the_device_line_names_both_gpu_paths(monkeypatch):
    monkeypatch.setattr(describe, "device_name", lambda device: "cuda: Tesla T4")
    line = wm.describe_run(tiny_config(device="cuda", amp="auto"))
    assert "training step: CUDA graph of the whole step" in line and "imagination: CUDA graph" in line
    assert "training step" not in wm.describe_run(tiny_config(device="cpu"))


# ---- the training loop reads the terms rarely ---------------------------------------------------
def test_training_reads_the_loss_terms_every_read_every_steps_not_every_step(small_data, monkeypatch):
    cfg = tiny_config(train_steps=3 * loop.READ_EVERY, log_every=1000, val_windows=2)
    train, val = small_data.split(cfg)
    model = wm.TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    reads = {"n": 0}
    real_tolist, real_float = torch.Tensor.tolist, torch.Tensor.__float__

    def counted(real):
        def read(self, *args):
            reads["n"] += self.dim() == 1 and len(self) == len(ts.TERMS)  # the per-step terms or their sum
            return real(self, *args)
        return read

    monkeypatch.setattr(torch.Tensor, "tolist", counted(real_tolist))
    monkeypatch.setattr(torch.Tensor, "__float__", counted(real_float))
    h = wm.train_world_model(model, train, val, cfg, progress=False)
    # 3 reads x (the sum, the last step's terms) + the records at step 0 and at the end; not one per step
    assert reads["n"] == 2 * 3 + 2 < cfg.train_steps
    assert h["step_backend"] == "eager"


def test_history_means_equal_the_mean_of_the_step_terms(small_data, monkeypatch):
    """Summed on the device in float64, the logged train means are those of the per-step floats."""
    cfg = tiny_config(train_steps=6, log_every=3, val_windows=2)
    train, val = small_data.split(cfg)
    model = wm.RSSMWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    seen = []
    real_call = ts.TrainStep.__call__

    def spy(self, batch):
        out = real_call(self, batch)
        seen.append([float(v) for v in out])
        return out

    monkeypatch.setattr(ts.TrainStep, "__call__", spy)
    h = wm.train_world_model(model, train, val, cfg, progress=False)
    for i, name in enumerate(ts.TERMS):
        expect = [sum(s[i] for s in seen[:3]) / 3, sum(s[i] for s in seen[3:]) / 3]
        assert h["train"][name] == expect, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_graph_step_learns_like_eager(small_data):
    """On a GPU: the captured step replays, the weights move, and the loss falls as in eager mode."""
    runs = {}
    for graphs in (False, True):
        cfg = tiny_config(device="cuda", train_seed=0)
        torch.manual_seed(0)
        model = wm.TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cuda").train()
        step = ts.TrainStep(model, cfg, graphs=graphs)
        batch = small_data.sample(2, 6, torch.Generator().manual_seed(0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a silent fallback would hide a failed capture
            totals = [float(step(batch)[0]) for _ in range(60)]
        runs[graphs] = totals
        assert step.backend == ("CUDA graph" if graphs else "eager")
    for totals in runs.values():
        assert sum(totals[-5:]) < 0.5 * sum(totals[:5])
    assert abs(sum(runs[True][-5:]) - sum(runs[False][-5:])) < 0.2 * sum(runs[False][-5:])
