"""One token per frame, made concrete: the demo's pieces on tiny synthetic frames and budgets."""

from __future__ import annotations

import torch

from wmhelpers.models.vae import CategoricalVAE
from wmhelpers.notebook_tools import one_token


def _frames(n: int, distinct: int = 4) -> torch.Tensor:
    """n frames drawn from `distinct` different pictures (a bright square in different places)."""
    pics = torch.full((distinct, 3, 64, 64), 0.3)
    for k in range(distinct):
        pics[k, :, 8 + 10 * k : 20 + 10 * k, 8:20] = 0.9
    return pics[torch.arange(n) % distinct]


def test_best_one_index_pictures_recover_a_codebook_that_exists():
    frames = _frames(40, distinct=4)
    pics = one_token.best_one_index_pictures(frames, classes=4, iters=10)
    recon = one_token.nearest_picture(frames, pics)
    assert torch.allclose(recon, frames)  # 4 pictures, 4 classes: every frame is drawn exactly


def test_one_index_can_draw_at_most_its_class_count():
    frames = torch.rand(60, 3, 64, 64)  # 60 unrelated frames, 8 pictures to draw them with
    pics = one_token.best_one_index_pictures(frames, classes=8, iters=3)
    recon = one_token.nearest_picture(frames, pics)
    assert len(torch.unique(recon.flatten(1), dim=0)) <= 8
    assert ((recon - frames) ** 2).mean() > 0.01  # so it cannot reproduce them


def test_train_vae_respects_step_and_time_budgets():
    frames = _frames(16)
    vae, info = one_token.train_vae(frames, 2, 4, steps=3, max_seconds=60, batch=4, conv_widths=(4, 4, 4, 4))
    assert info["steps"] == 3 and not vae.training
    _, info = one_token.train_vae(frames, 2, 4, steps=1000, max_seconds=0.0, batch=4, conv_widths=(4, 4, 4, 4))
    assert info["steps"] == 1  # no time left: one step, never zero


def test_demo_scores_every_reconstruction_on_the_held_out_frames():
    train, test = _frames(32), _frames(6)
    trained = CategoricalVAE((4, 4, 4, 4), latent_vars=2, latent_classes=4)
    res = one_token.add_trained(one_token.one_token_demo(train, test, seconds=60, steps=2, batch=4,
                                                         conv_widths=(4, 4, 4, 4)), {"already trained": trained})
    models = res["models"]
    assert set(models) == set(one_token.SHAPES) | {one_token.BEST_ONE_INDEX, "already trained"}
    assert [models[k]["bits"] for k in one_token.SHAPES] == [5.0, 160.0]
    assert models[one_token.BEST_ONE_INDEX]["psnr"] > 50  # only 4 distinct pictures: drawn exactly
    for m in models.values():
        assert m["recon"].shape == test.shape
        assert 0.0 <= float(m["recon"].min()) and float(m["recon"].max()) <= 1.0
        assert abs(m["mse"] - float(((m["recon"] - test) ** 2).mean())) < 1e-6
    assert models["one index (1 x 32)"]["codes_used"] <= 32
    fig = one_token.plot_one_token_demo(res, n=3)
    assert len(fig.axes) == 3 * (1 + len(models))


def test_a_vae_trained_later_joins_the_same_comparison_without_retraining():
    """After Section 3 the world model's own VAE is scored on Section 1's held-out frames and boxer pixels."""
    train, test = _frames(32), _frames(6)
    res = one_token.one_token_demo(train, test, seconds=60, steps=2, batch=4, conv_widths=(4, 4, 4, 4), shapes={})
    assert set(res["models"]) == {one_token.BEST_ONE_INDEX}  # shapes={} trains nothing
    later = CategoricalVAE((4, 4, 4, 4), latent_vars=2, latent_classes=4).eval()
    with torch.no_grad():
        expect = later.decode(later.encode(test))
    both = one_token.add_trained(res, {"trained later": later.train()})
    assert set(res["models"]) == {one_token.BEST_ONE_INDEX}  # the first result is left as it was
    assert set(both["models"]) == {one_token.BEST_ONE_INDEX, "trained later"}
    m = both["models"]["trained later"]
    assert torch.equal(m["recon"], expect) and m["bits"] == 4.0
    boxers = one_token.boxer_pixels(test, res["mean_frame"], res["foreground_threshold"])
    assert abs(m["boxer_psnr"] - float(one_token.masked_psnr(expect, test, boxers).nanmean())) < 1e-9
    assert later.training  # its mode is restored
