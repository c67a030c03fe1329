"""Section 6: the Markov check and the cue-recall experiment (wmhelpers.runs.memory)."""

from __future__ import annotations

import pytest
import torch
from conftest import NUM_ACTIONS, tiny_config

from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.runs import memory

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
    cues = torch.randint(K, (4, V), generator=torch.Generator().manual_seed(1))
    T, recall = 11, NUM_ACTIONS
    for gap in (1, 4, 10):
        seq = memory.cue_batch(bank, cues, T, recall, torch.Generator().manual_seed(gap), 6, gap=gap)
        for b in range(6):
            cue = cues[seq["cue"][b]]
            shown = [t for t in range(T) if torch.equal(seq["index"][b, t], cue)]
            assert shown == [T - 1 - gap, T - 1]  # seen once, then the frame to predict
            assert seq["action"][b, T - 2] == recall
            assert (seq["action"][b, : T - 2] < NUM_ACTIONS).all() and seq["action"][b, T - 1] < NUM_ACTIONS


def test_the_control_differs_only_by_showing_the_cue_right_before_the_recall():
    bank = bank_of([60])
    cues = torch.randint(K, (4, V), generator=torch.Generator().manual_seed(2))
    mem = memory.cue_batch(bank, cues, 12, NUM_ACTIONS, torch.Generator().manual_seed(0), 5, gap=6, control=False)
    ctl = memory.cue_batch(bank, cues, 12, NUM_ACTIONS, torch.Generator().manual_seed(0), 5, gap=6, control=True)
    assert torch.equal(mem["cue"], ctl["cue"]) and torch.equal(mem["action"], ctl["action"])
    differs = (mem["index"] != ctl["index"]).any(-1)  # [B, T]
    assert not differs[:, :10].any() and not differs[:, 11].any()
    assert torch.equal(ctl["index"][:, 10], cues[ctl["cue"]])


def test_sequences_never_cross_an_episode_end():
    bank = bank_of([7, 9, 12, 5])
    starts = memory.bank_starts(bank["episode"], 8)
    for s in starts.tolist():
        assert bank["episode"][s] == bank["episode"][s + 7]
    assert sorted(set(bank["episode"][starts].tolist())) == [1, 2]
    with pytest.raises(ValueError, match="consecutive"):
        memory.bank_starts(bank["episode"], 13)


# ---- the metric ---------------------------------------------------------------------------------------
def test_recall_scores_on_hand_made_tokens():
    cues = torch.zeros(3, 4, dtype=torch.long)
    cues[1] = torch.tensor([1, 1, 1, 1])
    cues[2] = torch.tensor([2, 2, 2, 2])
    pred = torch.tensor([[1, 1, 1, 0],  # 3 of 4 equal to cue 1: identified as cue 1
                         [0, 0, 2, 2],  # 2 of 4 like cue 0 and cue 2: a tie goes to cue 0, the lower index
                         [2, 2, 2, 2]])
    s = memory.recall_scores(pred, torch.tensor([1, 2, 0]), cues)
    assert s["match"].tolist() == [0.75, 0.5, 0.0]
    assert s["identified"].tolist() == [1.0, 0.0, 0.0]


def test_recall_loss_weights_the_recall_step_as_much_as_all_steps_together():
    logits = torch.zeros(1, 3, 2, 4)  # uniform: each categorical costs log 4
    index = torch.zeros(1, 3, 2, dtype=torch.long)
    per_step = 2 * torch.log(torch.tensor(4.0))
    assert memory.recall_loss(logits, index).item() == pytest.approx(2 * per_step.item())


# ---- the models' side -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TransformerWorldModel, RSSMWorldModel])
def test_next_token_logits_are_causal_and_match_teacher_forcing(cls, small_data):
    cfg = tiny_config()
    model = cls.from_config(cfg, num_actions=small_data.num_actions).eval()
    batch = small_data.sample(2, 8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        tf = model.teacher_forced(batch["obs"], batch["action"], sample=False)
        z = tf["latent"]
        if cls is TransformerWorldModel:  # the RSSM's teacher forcing reads its posterior; same latents here
            assert torch.allclose(model.next_token_logits(z, batch["action"]), tf["next_logits"], atol=1e-5)
        base = model.next_token_logits(z, batch["action"])
        z2 = z.clone()
        z2[:, 5:] = z2[:, 5:].roll(1, dims=-1)
        moved = model.next_token_logits(z2, batch["action"])
    assert torch.equal(base[:, :5], moved[:, :5])
    assert not torch.allclose(base[:, 5:], moved[:, 5:])


def test_the_markov_check_ignores_frames_older_than_k(small_data):
    cfg = tiny_config(context=4, horizon=3)
    models = {"RSSM": RSSMWorldModel.from_config(cfg, small_data.num_actions),
              "Transformer": TransformerWorldModel.from_config(cfg, small_data.num_actions)}
    win = small_data.fixed_windows(3, 7, seed=0)
    win = {"obs": win["obs"], "action": win["action"]}
    base = memory.markov_check(models, win, cfg, ks=(1, 2, 4), horizons=(1, 3))
    older = {"obs": win["obs"].clone(), "action": win["action"].clone()}
    older["obs"][:, :2] = 1 - older["obs"][:, :2]  # change the two oldest context frames ...
    older["action"][:, :1] = (older["action"][:, :1] + 1) % small_data.num_actions  # ... and the action between
    moved = memory.markov_check(models, older, cfg, ks=(1, 2, 4), horizons=(1, 3))
    for name in models:
        assert base["psnr"][name][:2] == moved["psnr"][name][:2]  # K = 1, 2 never see them
        assert base["psnr"][name][2] != moved["psnr"][name][2]  # K = 4 does
    with pytest.raises(ValueError, match="context"):
        memory.markov_check(models, win, cfg, ks=(8,))


def test_cue_recall_runs_both_backbones_on_the_same_task(small_data):
    cfg = tiny_config(val_episodes=2)
    train, val = small_data.split(cfg)
    vae = TransformerWorldModel.from_config(cfg, small_data.num_actions).vae
    before = [p.clone() for p in vae.parameters()]
    mcfg = memory.CueRecallConfig(cues=3, gaps=(2, 4), train_steps=4, batch_size=3, eval_every=2,
                                  eval_sequences=3, bank_frames=80)
    out = memory.run_cue_recall({"RSSM": RSSMWorldModel, "Transformer": TransformerWorldModel}, vae, train, val,
                                cfg, mcfg, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters()))  # the shared VAE never learns
    assert all(p.requires_grad for p in vae.parameters())  # ... and is given back as it came
    for run in out["models"].values():
        assert run["curve"]["step"] == [0, 2, 4]
        assert len(run["identified"]["memory"]) == 2 and len(run["decoded"]) == 2
        assert all(0 <= x <= 1 for x in run["identified"]["memory"] + run["identified"]["control"])
    assert out["chance"] == pytest.approx(1 / 3)
