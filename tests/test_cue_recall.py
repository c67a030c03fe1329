"""Section 6, the cue-recall experiment (wmhelpers.runs.cue_recall)."""

from __future__ import annotations

import pytest
import torch
from conftest import NUM_ACTIONS, tiny_config

from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.runs import cue_recall as cr

V, K = 32, 32


def bank_of(episode_lengths, seed=0):
    """A token bank like token_bank's, without a VAE: random tokens, actions and episode ids."""
    g = torch.Generator().manual_seed(seed)
    n = sum(episode_lengths)
    return {"index": torch.randint(K, (n, V), generator=g), "action": torch.randint(NUM_ACTIONS, (n,), generator=g),
            "episode": torch.repeat_interleave(torch.arange(len(episode_lengths)), torch.tensor(episode_lengths))}


# ---- the task ---------------------------------------------------------------------------------------
def test_the_cue_appears_once_gap_steps_before_the_recall():
    bank = bank_of([40, 40])
    pool = torch.randint(K, (4, V), generator=torch.Generator().manual_seed(1))
    T, recall = 11, NUM_ACTIONS
    for gap in (1, 4, 9):
        seq = cr.cue_batch(bank, pool, T, recall, torch.Generator().manual_seed(gap), 6, gap=gap)
        for b in range(6):
            shown = [t for t in range(T) if torch.equal(seq["index"][b, t], pool[seq["cue"][b]])]
            assert shown == [T - 1 - gap, T - 1]  # seen once, then the frame to predict
            assert seq["action"][b, T - 2] == recall
            assert (seq["action"][b, : T - 2] < NUM_ACTIONS).all() and seq["action"][b, T - 1] < NUM_ACTIONS


def test_the_control_differs_from_its_memory_sequence_only_right_before_the_recall():
    bank = bank_of([60])
    pool = torch.randint(K, (4, V), generator=torch.Generator().manual_seed(2))
    gaps = torch.tensor([2, 5, 8, 8, 5])
    mem = cr.cue_batch(bank, pool, 12, NUM_ACTIONS, torch.Generator().manual_seed(0), 5, gap=gaps, control=False)
    ctl = cr.cue_batch(bank, pool, 12, NUM_ACTIONS, torch.Generator().manual_seed(0), 5, gap=gaps, control=True)
    assert torch.equal(mem["cue"], ctl["cue"]) and torch.equal(mem["action"], ctl["action"])
    differs = (mem["index"] != ctl["index"]).any(-1)  # [B, T]
    assert not differs[:, :10].any() and not differs[:, 11].any() and differs[:, 10].all()
    assert torch.equal(ctl["index"][:, 10], pool[ctl["cue"]])


def test_sequences_never_cross_an_episode_end():
    bank = bank_of([7, 9, 12, 5])
    starts = cr.bank_starts(bank["episode"], 8)
    for s in starts.tolist():
        assert bank["episode"][s] == bank["episode"][s + 7]
    assert sorted(set(bank["episode"][starts].tolist())) == [1, 2]
    with pytest.raises(ValueError, match="consecutive"):
        cr.bank_starts(bank["episode"], 13)


def test_the_longest_gap_leaves_ordinary_frames_before_the_cue():
    mcfg = cr.CueRecallConfig(gaps=(2, 9), lead_in=3)
    assert mcfg.seq_len - 1 - max(mcfg.gaps) == 3  # the cue of the longest gap sits at step 3


# ---- the metric and its chance level ------------------------------------------------------------------
def test_scores_on_hand_made_tokens():
    pool = torch.zeros(3, 4, dtype=torch.long)
    pool[1] = torch.tensor([1, 1, 1, 1])
    pool[2] = torch.tensor([2, 2, 2, 2])
    pred = torch.tensor([[1, 1, 1, 0],  # 3 of 4 equal to cue 1: identified as cue 1
                         [0, 0, 2, 2],  # 2 of 4 like cue 0 and cue 2: a tie goes to cue 0, the lower index
                         [2, 2, 2, 2]])
    cue = torch.tensor([1, 2, 0])
    assert cr.score(pred, cue, pool, "match").tolist() == [0.75, 0.5, 0.0]
    assert cr.score(pred, cue, pool, "identified").tolist() == [1.0, 0.0, 0.0]


def test_chance_is_the_best_constant_guess_on_the_given_cues():
    pool = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 2]])
    assert cr.chance_level(torch.tensor([0, 0, 0, 1]), pool, "identified") == 0.75
    assert cr.chance_level(torch.tensor([0, 1, 2, 2]), pool, "identified") == 0.5
    # per categorical the most frequent class: (0, 1, 2, 2) for cues 1, 2, 2 -> 2, 4 and 4 of 4 match
    assert cr.chance_level(torch.tensor([1, 2, 2]), pool, "match") == pytest.approx((2 + 4 + 4) / 12)
    assert cr.chance_level(torch.tensor([0, 0]), pool, "match") == 1.0  # one cue: a constant copies it


def test_recall_loss_weights_the_recall_step_as_much_as_all_steps_together():
    logits = torch.zeros(1, 3, 2, 4)  # uniform: each categorical costs log 4
    index = torch.zeros(1, 3, 2, dtype=torch.long)
    per_step = 2 * torch.log(torch.tensor(4.0))
    assert cr.recall_loss(logits, index).item() == pytest.approx(2 * per_step.item())


def _tasks(small_data, **kw):
    cfg = tiny_config(val_episodes=2)
    train, val = small_data.split(cfg)
    vae = TransformerWorldModel.from_config(cfg, small_data.num_actions).vae
    mcfg = cr.CueRecallConfig(**{**dict(cues=3, copy_pool=20, gaps=(2, 4), lead_in=1, identify_steps=4,
                                        copy_steps=2, batch_size=3, eval_points=3, eval_sequences=6,
                                        bank_frames=80), **kw})
    return cfg, train, val, vae, mcfg


def test_copy_cues_vary_and_chance_is_measured_on_the_evaluation_sequences(small_data):
    cfg, train, val, vae, mcfg = _tasks(small_data)
    tasks = cr.build_tasks(vae.eval(), train, val, cfg, mcfg)
    copy, ident = tasks["copy"], tasks["identify"]
    seq = copy.eval_seq
    assert len(set(seq["cue"].tolist())) > mcfg.cues  # drawn from many frames, not a few snapshots
    assert len(copy.train_pool) > len(copy.eval_pool) > mcfg.cues and len(ident.eval_pool) == mcfg.cues
    T = mcfg.seq_len
    at_cue = seq["index"][torch.arange(len(seq["gap"])), T - 1 - seq["gap"]]
    assert torch.equal(at_cue, copy.eval_pool[seq["cue"]]) and torch.equal(seq["index"][:, -1], at_cue)
    memory = ~seq["control"]
    for task in (copy, ident):
        assert task.chance == cr.chance_level(task.eval_seq["cue"][memory], task.eval_pool, task.metric)
    assert 0 < copy.chance < 1


# ---- the window condition -------------------------------------------------------------------------------
def test_the_main_window_hides_steps_the_full_window_shows(small_data):
    """The read after the recall action cannot move when a step beyond the main window's reach
    (layers x window tokens) changes, and does with the full window."""
    cfg = tiny_config(seq_len=4, tf_layers=2)  # window 8 tokens per layer: the last read reaches 2 x 7 back
    T = 20
    z = cr.one_hot(torch.randint(K, (2, T, 32), generator=torch.Generator().manual_seed(0)), 32)
    a = torch.randint(NUM_ACTIONS, (2, T), generator=torch.Generator().manual_seed(1))
    out = {}
    for cond in ("Transformer, main window", "Transformer, full window"):
        cls, ccfg = cr.condition_config(cfg, cond, T)
        model = cls.from_config(ccfg, num_actions=NUM_ACTIONS).eval()
        with torch.no_grad():
            base = model.next_token_logits(z, a)[:, T - 2]
            far, near = z.clone(), z.clone()
            far[:, 2] = far[:, 2].roll(1, dims=-1)  # step 2: tokens 4-5, 32 tokens before the read at 37
            near[:, T - 3] = near[:, T - 3].roll(1, dims=-1)
            out[cond] = [torch.equal(base, model.next_token_logits(v, a)[:, T - 2]) for v in (far, near)]
    assert out["Transformer, main window"] == [True, False]
    assert out["Transformer, full window"] == [False, False]


# ---- a whole run ---------------------------------------------------------------------------------------
def test_cue_recall_trains_every_condition_on_the_same_task(small_data):
    cfg, train, val, vae, mcfg = _tasks(small_data)
    before = [p.clone() for p in vae.parameters()]
    out = cr.run_cue_recall(vae, train, val, cfg, mcfg, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters()))  # the shared VAE never learns
    assert all(p.requires_grad for p in vae.parameters())  # ... and is given back as it came
    assert set(out["loads"]) == {"identify", "copy"} and out["config"]["gaps"] == [2, 4]
    for load, steps in (("identify", [0, 2, 4]), ("copy", [0, 1, 2])):
        info = out["loads"][load]
        assert list(info["models"]) == list(cr.CONDITIONS)
        for run in info["models"].values():
            assert run["step"] == steps and len(run["memory"]) == len(steps) and len(run["control"][-1]) == 2
            assert all(0 <= x <= 1 for x in run["memory"][-1] + run["control"][-1])
    windows = {c: m["window_steps"] for c, m in out["loads"]["copy"]["models"].items()}
    assert windows == {"RSSM": None, "Transformer, full window": max(mcfg.seq_len, cfg.seq_len),
                       "Transformer, main window": cfg.seq_len}


def test_the_longer_runs_are_the_same_task_with_more_steps():
    short, long = cr.CueRecallConfig().to_dict(), cr.CueRecallConfig.long().to_dict()
    budget = {k for k in short if short[k] != long[k]}
    assert budget == {"identify_steps", "copy_steps", "eval_points"}
    assert all(long[k] > short[k] for k in budget)
