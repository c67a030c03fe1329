"""Wall clock only between runs on the same device (device.same_device): CPU step times differ 2x
between CPU models and with the thread count, and a GPU step is 10-20x faster. The Transformer is
trained in the notebook, here; the RSSM comes from a checkpoint that may have been trained
elsewhere. Then on a GPU it is retrained here (cheap there: `load_or_train(...,
train_here_if_foreign=True)`); otherwise its curve is PROJECTED onto this device's time axis from a
short burst of RSSM steps timed here, and says so. Also Section 5's answer on attention's cost.
"""

from __future__ import annotations

import copy
import textwrap

import torch

from ..device import device_name, device_record, same_device
from ..training.step import train_step_ms


def foreign(history: dict, device: torch.device | str) -> bool:
    """True when `history` was not trained on this kind of device (or does not say where)."""
    return not same_device(history.get("device_record"), device_record(device))


def train_here(history: dict, device: torch.device | str) -> bool:
    """Retrain a checkpoint here? Only on a GPU (cheap there) and only if it came from elsewhere."""
    return torch.device(device).type == "cuda" and foreign(history, device)


def burst_ms_per_step(model_cls, cfg, train, num_actions: int, steps: int = 8) -> float:
    """Median ms of `steps` full training steps (training.step.TrainStep) of a fresh model here.
    Seconds of work: what a student's laptop can afford to learn its own pace. The global random
    state is restored afterwards, so timing a burst changes nothing that is trained after it."""
    with torch.random.fork_rng(devices=[]):
        model = model_cls.from_config(cfg, num_actions=num_actions)
        g = torch.Generator().manual_seed(cfg.train_seed)
        batch = {k: v.to(model.device) for k, v in train.sample(cfg.batch_size, cfg.seq_len, g).items()}
        return train_step_ms(model, batch, cfg, repeats=steps, warmup=2)[0]


def project(history: dict, ms_per_step: float, device: torch.device | str) -> dict:
    """A copy of `history` whose wall clock is steps x ms_per_step measured on `device`, marked projected."""
    out = copy.deepcopy(history)
    out["wall_seconds"] = [s * ms_per_step / 1000.0 for s in history["step"]]
    out["projected_from"] = {"device": history.get("device"), "ms_per_step": history.get("ms_per_step"),
                             "train_seconds": history.get("train_seconds")}
    out["ms_per_step"] = ms_per_step
    out["train_seconds"] = history["step"][-1] * ms_per_step / 1000.0
    out["device"] = f"{device_name(device)} (projected)"
    out["device_record"] = device_record(device)
    return out


def on_this_device(histories: dict, device, measure) -> tuple[dict, list[str]]:
    """Histories ready for one time axis on `device`, and one line per replaced run saying why.

    `measure(name) -> ms per step` times a burst of that model here (burst_ms_per_step); it is
    only called for runs trained elsewhere."""
    out, notes = {}, []
    for name, h in histories.items():
        if not foreign(h, device):
            out[name] = h
            continue
        ms = measure(name)
        out[name] = project(h, ms, device)
        notes.append(textwrap.fill(
            f"{name}: trained on {h.get('device') or 'an unrecorded device'}, not on this {device_name(device)}; "
            f"its wall clock is not comparable, so its curve is projected onto this device from a burst timed "
            f"here ({ms:.0f} ms/step); per gradient step it is exact.", 110))
    return out, notes


def attention_cost_sentence(sweep: dict, clock: dict, batch_size: int, seq_len: int) -> str:
    """Section 5's answer to "is attention's cost observable at these lengths?", from the sweep
    (dynamics-only step times per length, Transformer and GRU, at the sweep's batch) and the full
    training steps of `clock` (ms_per_step per model, at `batch_size` and `seq_len`).

    Observable when, at the training length, the Transformer's dynamics cost more than the GRU's by
    more than 5 % of a full Transformer step; "from which T on": the first length from which its
    dynamics step stays slower than the GRU's."""
    lens, tf, gru = sweep["seq_lens"], sweep["transformer_ms"], sweep["gru_ms"]
    i = lens.index(seq_len) if seq_len in lens else 0
    scale = batch_size / sweep["batch"]  # a step's cost grows about linearly with the batch
    step = clock["Transformer"]["ms_per_step"]
    extra = scale * (tf[i] - gru[i]) / step
    slower = [T for j, T in enumerate(lens) if all(tf[k] > gru[k] for k in range(j, len(lens)))]
    where = ("attention is the dearer backbone at every length timed" if slower and slower[0] == lens[0] else
             f"attention becomes the dearer backbone from T = {slower[0]} on ({tf[lens.index(slower[0])]:.0f} "
             f"against {gru[lens.index(slower[0])]:.0f} ms)" if slower else
             f"attention stays cheaper than the GRU up to T = {lens[-1]}, the longest length timed")
    return (f"At T = {lens[i]}, attention's cost is {'observable' if extra > 0.05 else 'not observable'} in a training "
            f"step: the Transformer's dynamics are ~{100 * scale * tf[i] / step:.0f} % of it, and they cost "
            f"{100 * extra:+.0f} % of a step against the GRU's; {where}.")
