"""Play inside both world models: the student picks an action, the real game and every world model take it.

    session = wm.play.PlaySession({"RSSM": rssm, "Transformer": tf}, val, cfg)
    session.step("RIGHTFIRE"); session.resync(); session.render()
    wm.play.panel(models, val, cfg)      # the same with buttons; a static view shows `drift_figure`

The real side replays a validation episode from reset up to a held-out context window (Boxing
without sticky actions replays exactly; `replay_exact` says so). Each model then takes one
`WorldModel.imagine` step per action, from the state its previous step returned.
"""

from __future__ import annotations

import base64
import html
import io
import sys
import warnings

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..config import ExperimentConfig
from ..data import make_env, resize_frame, to_float_frames, to_uint8_frames
from ..evaluation.rollouts import token_agreement
from .animate import BACKGROUND, INK, font
from .plots import MODEL_COLORS

SCALE = 4  # each 64x64 frame is drawn 256 x 256 (nearest neighbour: pixels stay pixels)
MARGIN, GAP = 10, 14  # pixels around the image and between the panels
TITLE_H, READOUT_H = 30, 72  # the title row above the frames, the readout rows below
HINT = ("Click an action: the real game and both world models take it (re-sync restarts the models from\n"
        "the last real frames). Playing needs a live kernel: in a static view (GitHub, a saved HTML page)\n"
        "open the notebook in Jupyter or Colab to play; there the panel is a figure of how the models drift.")


def _quiet_env(cfg: ExperimentConfig):
    """`make_env` without ALE's start-up banner on stderr (it would print in red above the panel)."""
    from ale_py import ALEInterface, LoggerMode

    ALEInterface.setLoggerMode(LoggerMode.Error)
    return make_env(cfg)


class _Side:
    """One world model in the session: its imagination state, current token, frame and predicted reward."""

    def __init__(self, model):
        self.model = model.eval()  # no dropout, as in the evaluation

    def sync(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Observe the real context: the current token is the posterior token of the last real frame."""
        self.state = self.model.observe(obs.to(self.model.device), actions.to(self.model.device))
        self.latent, self.reward, self.since_sync = self.state["latent"], None, 0
        self.frame = to_uint8_frames(self.model.decode(self.latent)[0])

    def advance(self, action: int) -> None:
        out = self.model.imagine(self.state, torch.tensor([[action]], device=self.model.device))
        self.state, self.latent, self.since_sync = out["state"], out["latent"][:, 0], self.since_sync + 1
        self.reward = float(out["reward"][0, 0])
        self.frame = to_uint8_frames(self.model.decode(self.latent)[0])


class PlaySession:
    """The real game and every world model, driven by the same actions; no widgets. `start`: the row
    of `val` where the held-out context window begins (0: the notebook GIF's window)."""

    def __init__(self, models: dict, val, cfg: ExperimentConfig, start: int = 0):
        self.cfg, self.val, self.context = cfg, val, cfg.context
        self.env = _quiet_env(cfg)
        self.action_names = tuple(self.env.unwrapped.get_action_meanings())
        self.num_actions = len(self.action_names)
        self.sides = {name: _Side(model) for name, model in models.items()}
        episode = val.arrays["episode"]
        if not (0 <= start <= len(episode) - cfg.context and episode[start] == episode[start + cfg.context - 1]):
            raise ValueError(f"start={start}: need a row whose {cfg.context}-frame window lies in one "
                             f"validation episode")
        self.start = int(start)
        self.restart()

    def action_index(self, action) -> int:
        """An int in [0, num_actions) or one of `action_names`, as an index; else a ValueError."""
        if isinstance(action, str) and action in self.action_names:
            return self.action_names.index(action)
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < self.num_actions:
            return int(action)
        names = ", ".join(f"{i} {name}" for i, name in enumerate(self.action_names))
        raise ValueError(f"action {action!r} is not an action of {self.cfg.env_id}: give an int in "
                         f"[0, {self.num_actions}) or a name ({names})")

    @torch.no_grad()
    def restart(self) -> dict:
        """Replay the window's episode from reset to the window's last frame, then sync the models."""
        episode, obs, actions = (self.val.arrays[k] for k in ("episode", "obs", "action"))
        first = int(np.flatnonzero(episode == episode[self.start])[0])  # every episode starts at a reset
        end = self.start + self.context - 1
        frames = [resize_frame(self.env.reset(seed=self.cfg.seed)[0], self.cfg.frame_size)]
        frames += [resize_frame(self.env.step(int(a))[0], self.cfg.frame_size) for a in actions[first:end]]
        self.replay_exact = bool(np.array_equal(np.stack(frames), obs[first : end + 1]))
        if not self.replay_exact:
            warnings.warn("replaying the validation episode did not reproduce its recorded frames; the session "
                          "goes on from the emulator's frames (the models observe those)", stacklevel=2)
        self.frames, self.actions = frames[-self.context :], [int(a) for a in actions[self.start : end]]
        self.step_count, self.done = 0, False
        return self.resync()

    def _window(self) -> tuple[torch.Tensor, torch.Tensor]:
        return to_float_frames(np.stack(self.frames))[None], torch.tensor([self.actions])

    @torch.no_grad()
    def resync(self) -> dict:
        """Restart every model from the last cfg.context real frames and the actions between them."""
        for side in self.sides.values():
            side.sync(*self._window())
        self.last = self._result(action=None, real_reward=None)
        return self.last

    @torch.no_grad()
    def step(self, action) -> dict:
        """One step of the real game and of every model with the same action; returns `last`."""
        a = self.action_index(action)
        if self.done:
            raise RuntimeError(f"the real game is over (it ended at step {self.step_count}); call restart() "
                               "to play again from the held-out window")
        frame, reward, terminated, truncated, _ = self.env.step(a)
        self.frames = (self.frames + [resize_frame(frame, self.cfg.frame_size)])[-self.context :]
        self.actions = (self.actions + [a])[-(self.context - 1) :]
        self.step_count, self.done = self.step_count + 1, bool(terminated or truncated)
        for side in self.sides.values():
            side.advance(a)
        self.last = self._result(action=a, real_reward=float(reward))
        return self.last

    def _result(self, action, real_reward) -> dict:
        """step, action, action_name, frames {"real", name: uint8 [64, 64, 3]}, token_agreement {name:
        share of the imagined token's categoricals equal to the real frame's posterior token},
        predicted_reward {name}, real_reward, since_sync, done (None fields: right after a sync)."""
        obs, actions = self._window()
        agreement = {name: float(token_agreement(side.latent[0], side.model.encode(
            obs.to(side.model.device), actions.to(side.model.device))[0, -1], self.cfg.latent_vars))
            for name, side in self.sides.items()}  # the RSSM's posterior reads the history: encode the window
        return {"step": self.step_count, "action": action,
                "action_name": None if action is None else self.action_names[action],
                "frames": {"real": self.frames[-1], **{name: side.frame for name, side in self.sides.items()}},
                "token_agreement": agreement,
                "predicted_reward": {name: side.reward for name, side in self.sides.items()},
                "real_reward": real_reward, "since_sync": next(iter(self.sides.values())).since_sync,
                "done": self.done}

    def summary(self) -> str:
        """The latest readouts in one line (the panel's status line)."""
        r = self.last
        parts = [f"step {r['step']}: " + (r["action_name"] or "synced to the real frames")]
        if r["real_reward"] is not None:
            parts.append(f"real reward {r['real_reward']:+g}")
        for name, agree in r["token_agreement"].items():
            reward = r["predicted_reward"][name]
            parts.append(f"{name} token agreement {agree:.0%}" + ("" if reward is None else f", reward {reward:+.2f}"))
        return " · ".join(parts + ["game over: restart"] * r["done"])

    def render(self) -> Image.Image:
        """The real frame and every model's frame side by side (each SCALE x), titled, readouts below."""
        r, V, side = self.last, self.cfg.latent_vars, SCALE * self.cfg.frame_size
        panels = [("real game", r["frames"]["real"])] + [(f"{n} imagines", r["frames"][n]) for n in self.sides]
        image = Image.new("RGB", (2 * MARGIN + len(panels) * side + (len(panels) - 1) * GAP,
                                  MARGIN + TITLE_H + side + READOUT_H), BACKGROUND)
        draw = ImageDraw.Draw(image)
        action = "synced to the real frames" if r["action"] is None else f"action {r['action_name']}"
        readouts = [[f"step {r['step']} · {action}", "" if r["real_reward"] is None else
                     f"real reward {r['real_reward']:+g}", f"{r['since_sync']} imagined steps since re-sync"]]
        for name in self.sides:
            agree, reward = r["token_agreement"][name], r["predicted_reward"][name]
            readouts.append([f"token agreement {round(agree * V)}/{V} ({agree:.0%})",
                             "" if reward is None else f"predicted reward {reward:+.2f}"])
        for i, ((title, frame), lines) in enumerate(zip(panels, readouts)):
            x = MARGIN + i * (side + GAP)
            draw.text((x, MARGIN), title, fill=INK, font=font(20))
            image.paste(Image.fromarray(frame).resize((side, side), Image.NEAREST), (x, MARGIN + TITLE_H))
            for k, line in enumerate(lines):
                grey = (110,) * 3 if k == 2 else INK  # the third line: imagined steps since the last re-sync
                draw.text((x, MARGIN + TITLE_H + side + 6 + 19 * k), line, fill=grey, font=font(15))
        return image

    def render_png(self) -> bytes:
        buf = io.BytesIO()
        self.render().save(buf, format="PNG")
        return buf.getvalue()


@torch.no_grad()
def drift(session: PlaySession, steps: int = 20) -> dict:
    """Imagine `steps` steps (fewer at the episode's end) from the session's held-out window with the
    episode's real next actions -> steps [1..H], agreement {name: [H] token agreement with the real
    frame's posterior token}, frames {"real" | name: uint8 [H, 64, 64, 3]}."""
    arrays, C, start = session.val.arrays, session.context, session.start
    end = start + C - 1
    H = min(steps, int(np.flatnonzero(arrays["episode"] == arrays["episode"][start])[-1]) - end)
    obs = to_float_frames(arrays["obs"][start : end + 1 + H])[None]
    actions = torch.as_tensor(arrays["action"][start : end + H], dtype=torch.long)[None]
    out = {"steps": list(range(1, H + 1)), "agreement": {}, "frames": {"real": arrays["obs"][end + 1 : end + 1 + H]}}
    for name, side in session.sides.items():
        model = side.model
        o, a = obs.to(model.device), actions.to(model.device)
        imagined = model.imagine(model.observe(o[:, :C], a[:, : C - 1]), a[:, C - 1 :])["latent"][0]
        real = model.encode(o, a)[0, C:]
        out["agreement"][name] = token_agreement(imagined, real, session.cfg.latent_vars).tolist()
        out["frames"][name] = to_uint8_frames(model.decode(imagined))
    return out


def drift_figure(d: dict, shown=(1, 5, 10, 20)) -> Figure:
    """Token agreement against imagined step for every model, above the frames at the `shown` steps."""
    shown = [s for s in shown if s <= len(d["steps"])]
    rows = list(d["frames"])
    fig = Figure(figsize=(9, 2.6 + 1.5 * len(rows)), layout="constrained")
    grid = fig.add_gridspec(1 + len(rows), len(shown), height_ratios=[2.2] + [1.3] * len(rows))
    ax = fig.add_subplot(grid[0, :])
    for name, agreement in d["agreement"].items():
        ax.plot(d["steps"], agreement, marker="o", ms=3, label=name, color=MODEL_COLORS.get(name))
    ax.set(xlabel="imagined step (the episode's real actions)", ylabel="token agreement", ylim=(0, 1.03),
           title="How far each model's imagined token drifts from the real frame's")
    ax.set_xticks([1, *range(5, len(d["steps"]) + 1, 5)])
    ax.legend()
    for r, row in enumerate(rows):
        for c, s in enumerate(shown):
            a = fig.add_subplot(grid[1 + r, c], xticks=[], yticks=[])
            a.imshow(d["frames"][row][s - 1], interpolation="nearest")
            a.set_title(f"step {s}" if r == 0 else None, fontsize=9)
            a.set_ylabel(("real game" if row == "real" else row) if c == 0 else None, fontsize=9)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


class _PanelOutput:
    """The live widget where widgets render; the drift figure's PNG in a static view (nbconvert,
    GitHub), instead of the widget's text fallback "VBox(children=(Image(value=b'\\x89PNG..."."""

    def __init__(self, widget, png: bytes):
        self.widget, self.png = widget, png

    def _repr_mimebundle_(self, **kwargs):
        data = self.widget._repr_mimebundle_(**kwargs)
        return dict(data, **{"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": repr(self)})

    def __repr__(self) -> str:
        return "(the play panel: open the notebook in Jupyter or Colab to play)"


def _in_colab() -> bool:
    return "google.colab" in sys.modules  # a Colab kernel imports it at start


def controls(session: PlaySession):
    """The ipywidgets panel: the image, one button per action, "step again", "re-sync", "restart" and a
    status line; a failing click shows one red line there, never a traceback."""
    import ipywidgets as widgets

    image, status = widgets.Image(format="png"), widgets.HTML()
    chosen = {"action": 0}
    again = widgets.Button(description="step again: NOOP", icon="play", layout=widgets.Layout(width="240px"))

    def show(line: str) -> None:
        image.value = session.render_png()
        status.value = f"<span style='font-family:monospace'>{line}</span>"

    def safely(move):
        def callback(_button=None):
            try:
                move()
                show(html.escape(session.summary()))
            except Exception as error:  # noqa: BLE001  (the panel shows any failure as one line)
                first = str(error).splitlines()[0] if str(error) else ""
                status.value = f"<span style='color:#b00020'>{type(error).__name__}: {html.escape(first)}</span>"
        return callback

    def choose(index: int):
        def move():
            chosen["action"] = index
            again.description = f"step again: {session.action_names[index]}"
            session.step(index)
        return move

    buttons = [widgets.Button(description=name, layout=widgets.Layout(width="auto")) for name in session.action_names]
    for index, button in enumerate(buttons):
        button.on_click(safely(choose(index)))
    again.on_click(safely(lambda: session.step(chosen["action"])))
    resync = widgets.Button(description="re-sync", icon="refresh", tooltip="restart both models from the real frames")
    resync.on_click(safely(session.resync))
    restart = widgets.Button(description="restart", icon="undo", tooltip="back to the held-out window")
    restart.on_click(safely(session.restart))
    grid = widgets.GridBox(buttons, layout=widgets.Layout(grid_template_columns="repeat(6, 150px)", grid_gap="4px"))
    show(html.escape(session.summary()))
    return widgets.VBox([image, status, grid, widgets.HBox([again, resync, restart])])


def panel(models: dict, val, cfg: ExperimentConfig, start: int = 0) -> PlaySession:
    """Show the play panel (a live widget; `drift_figure` where widgets cannot run) and return the
    session (its widget: `session.widget`, its drift: `session.drift`)."""
    from IPython.display import Image as StillImage
    from IPython.display import display

    session = PlaySession(models, val, cfg, start)
    session.drift = drift(session)
    still = _png(drift_figure(session.drift))
    print(HINT)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print("(ipywidgets is not installed: pip install ipywidgets, then run this cell again)")
        display(StillImage(still))
        return session
    session.widget = controls(session)
    if _in_colab():  # Colab has a live kernel: the plain widget, through its ipywidgets-8 manager
        try:
            from google.colab import output

            output.enable_custom_widget_manager()
        except (ImportError, AttributeError) as err:
            print(f"(Colab's custom widget manager is not available here: {err}; the buttons may not render)")
            display(StillImage(still))
        display(session.widget)
    else:
        display(_PanelOutput(session.widget, still))
    return session
