"""The figures draw what their captions say: per-horizon ceilings, legends outside the data,
labelled axes, reference lines, device names, projected curves, and the numbers behind them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wmhelpers.notebook_tools import plots

H = 5


def _curve(base: float, slope: float = -0.5) -> dict:
    mean = [base + slope * h for h in range(H)]
    return {"whole": {"mean": mean, "ci": [0.2] * H, "n": [30] * H},
            "changed": {"mean": [m - 10 for m in mean], "ci": [0.3] * H, "n": [30] * H}}


def _results() -> dict:
    models = {}
    for name, base in (("RSSM", 28.0), ("Transformer", 27.5)):
        models[name] = {"mode": _curve(base), "sampled": _curve(base + 0.5), "latent_hold": _curve(base - 1),
                        "recon_ceiling": _curve(29.0, slope=0.1)}
    return {"horizons": list(range(1, H + 1)), "models": models,
            "baselines": {"copy_last": _curve(26.0, -1.0), "context_mean": _curve(25.0, -0.2)}}


def _history(device="cpu: Test CPU, 2 threads", ms=100.0) -> dict:
    steps = [0, 10, 20, 30]
    return {"step": steps, "wall_seconds": [s * ms / 1000 for s in steps], "device": device,
            "train": {"dyn_loss": [4.0, 8.0, 7.0], "reward_loss": [0.06, 0.055, 0.054], "recon_loss": [90, 40, 20],
                      "kl": [4.0, 8.0, 7.0]},
            "val": {"dyn_loss": [3.0, 5.0, 9.0, 8.0], "reward_loss": [0.1, 0.06, 0.055, 0.054],
                    "recon_loss": [900, 80, 35, 18], "kl": [3.0, 5.0, 9.0, 8.0], "total": [1000, 90, 50, 30]},
            "val_next_frame_mse": [0.1, 0.01, 0.005, 0.004]}


def _line(fig, label):
    found = [ln for ax in fig.axes for ln in ax.lines if ln.get_label() == label]
    assert found, f"no line labelled {label!r}"
    return found[0]


def test_psnr_ceilings_per_horizon_and_legend_outside():
    res = _results()
    fig = plots.psnr_vs_horizon(res)
    ceiling = _line(fig, "RSSM reconstruction ceiling")
    assert np.allclose(ceiling.get_ydata(), res["models"]["RSSM"]["recon_ceiling"]["whole"]["mean"])
    assert ceiling.get_linestyle() == ":"
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert "training seeds" not in " ".join(t.get_text() for t in fig.legends[0].get_texts())


def test_psnr_draws_seed_spread_when_given():
    res = _results()
    seeds = {name: {m: {"mean": [20.0 + h for h in range(H)], "ci": [0.5] * H, "n": 3} for m in ("whole", "changed")}
             for name in res["models"]}
    fig = plots.psnr_vs_horizon(res, seeds=seeds)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Transformer mean over 3 training seeds (95 % t-interval)" in labels
    bars = [c for c in fig.axes[0].containers if c.get_label().startswith("RSSM mean over")]
    assert bars and np.allclose(bars[0].lines[0].get_ydata(), seeds["RSSM"]["whole"]["mean"])
    assert "error bars" in plots.psnr_caption(seeds=seeds) and "error bars" not in plots.psnr_caption()
    assert "dotted: each model's reconstruction ceiling at that step" in plots.psnr_caption()


def test_training_curves_label_axes_and_draw_the_constant_predictor():
    fig = plots.training_curves({"Transformer": _history()}, reward_constant=0.0502)
    for ax in fig.axes:
        assert ax.get_xlabel() == "gradient step" and ax.get_ylabel()
    ref = _line(fig, "predict 0 every step (0.0502)")
    assert np.allclose(ref.get_ydata(), 0.0502)
    assert not any(ln.get_label().startswith("predict 0") for ln in
                   plots.training_curves({"Transformer": _history()}).axes[1].lines)


def test_loss_trend_reports_the_rise():
    trend = plots.loss_trend(_history())
    assert trend["dyn_loss"] == {"first": 3.0, "last": 8.0, "min": 3.0, "max": 9.0,
                                 "step_of_min": 0, "step_of_max": 20}
    assert plots.loss_trend(_history(), split="train")["dyn_loss"]["step_of_max"] == 20


def test_kl_title_comes_from_the_argument():
    assert plots.kl_curve({"RSSM": _history()}, title="no collapse here").axes[0].get_title() == "no collapse here"


def test_efficiency_draws_a_wallclock_projection_as_projected_with_short_device_tags():
    from wmhelpers.evaluation import wallclock

    rssm = wallclock.project(_history("cpu: Other CPU", ms=400), 250.0, "cpu")
    here = plots._device_label(rssm)
    fig = plots.efficiency({"RSSM": rssm, "Transformer": _history(device=here)})
    time_loss, step_loss, time_mse, _ = fig.axes
    assert "validation loss" in time_loss.get_ylabel() and "next-frame MSE" in time_mse.get_ylabel()
    assert plots.device_tags({"RSSM": rssm}) == {"cpu: Other CPU": "cpu 1", here: "cpu 2"}
    proj = _line(fig, "RSSM, projected onto cpu 2: 250 ms/step")
    assert proj.get_linestyle() == "--" and np.allclose(proj.get_xdata(), [2.5, 5.0, 7.5])  # step 0 left out
    assert np.allclose(proj.get_ydata(), [90, 50, 30])  # the validation loss, history["val"]["total"]
    assert [ln.get_label() for ln in step_loss.lines] == ["RSSM (trained on cpu 1)", "Transformer (trained on cpu 2)"]
    caption = fig.get_supxlabel().replace("\n", " ")
    assert "cpu 1 = cpu: Other CPU" in caption and f"cpu 2 = {here}" in caption


def test_attention_answer_and_labels():
    L = 6
    maps = torch.zeros(2, 1, 3, L, L)
    maps[0, 0, :, -1, -2] = 0.9  # layer 1: 0.9 on the newest latent z_t ...
    maps[0, 0, :, -1, 0] = 0.1
    maps[1, 0, :, -1, :] = 1 / L  # layer 2: uniform
    assert plots.attention_on_newest_latent(maps) == pytest.approx([0.9, 1 / L])
    fig = plots.attention_map(maps, steps_context=2)
    assert fig.axes[1].get_ylabel() == "attention weight\n(mean over heads)"
    assert all(t.get_fontsize() >= 8 for t in fig.axes[0].get_xticklabels())


def test_filmstrip_errors_shows_each_models_error_map():
    C, Hs = 2, 4
    truth = torch.rand(C + Hs, 3, 64, 64)
    pred = truth[C:].clone()
    pred[1] = 0.0  # step +2 is all wrong
    fig = plots.filmstrip_errors(truth, {"A": pred}, context=C, steps=[1, 2])
    axes = np.array(fig.axes[:-1]).reshape(3, 3)  # rows: truth, A, A error; cols: ctx, +1, +2 (+ colorbar)
    err2 = axes[2, 2].images[0].get_array()
    assert np.allclose(err2, truth[C + 1].mean(0).numpy(), atol=1e-6)
    assert np.allclose(axes[2, 1].images[0].get_array(), 0)
    assert fig.axes[-1].get_ylabel().startswith("|prediction")
    assert plots.spread_steps(20) == [1, 2, 3, 5, 7, 10, 15, 20] and plots.spread_steps(4) == [1, 2, 3, 4]


def test_causal_mask_figure_uses_the_mask():
    fig = plots.causal_mask(steps=3)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (6, 6) and shown[0, 1] == 0 and shown[5, 0] == 1


def test_efficiency_layout_does_not_depend_on_the_hosts_device_name():
    long_name = "cpu: " + "Intel(R) Xeon(R) Processor, 2 threads, AVX512, AVX-512 BF16, AMX, 1 threads".ljust(75, "x")
    assert len(long_name) >= 80
    hists = {"RSSM": _history(long_name, ms=400), "Transformer": _history("cpu: Test CPU, 1 threads")}
    fig = plots.efficiency(hists)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    fig_box = fig.get_window_extent(renderer)
    time_loss, step_loss, time_mse, step_mse = fig.axes
    assert time_loss.get_legend() is None and step_loss.get_legend() is None
    for ax in (time_mse, step_mse):  # one legend per column, wholly under the bottom axes, inside the figure
        leg = ax.get_legend().get_window_extent(renderer)
        assert leg.y1 < ax.get_window_extent(renderer).y0
        assert leg.width <= fig_box.width and fig_box.x0 <= leg.x0 and leg.x1 <= fig_box.x1
    labels = [t.get_text() for ax in (time_mse, step_mse) for t in ax.get_legend().get_texts()]
    assert all(len(s) < 40 for s in labels) and "RSSM (trained on cpu 1)" in labels
    caption = fig.get_supxlabel()
    assert "Xeon" in caption and "cpu: Test CPU, 1 thread" in caption and "1 threads" not in caption
    for ax in fig.axes:  # a log axis: one plain label per visible tick, no minor labels
        lo, hi = ax.get_ylim()
        shown = [t.get_text() for t in ax.get_yticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]
        assert len(shown) >= 2 and len(shown) == len(set(shown))
        assert all("times" not in s and "^" not in s for s in shown)
        assert not any(t.get_text() for t in ax.get_yticklabels(minor=True))


def test_every_figure_fits_a_1000_px_page():
    res = _results()
    figs = [plots.psnr_vs_horizon(res), plots.efficiency({"Transformer": _history()}),
            plots.training_curves({"Transformer": _history()})]
    assert all(f.get_figwidth() * f.dpi <= 1000 + 1e-9 for f in figs)
