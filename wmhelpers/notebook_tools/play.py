"""Play inside both world models: the student picks an action, the real game and every world model take it.

    session = wm.play.PlaySession({"RSSM": rssm, "Transformer": tf}, val, cfg)
    out = session.step("RIGHTFIRE")      # or session.step(12): one step of the real game and of each model
    session.resync()                     # restart the models from the last cfg.context real frames
    session.render()                     # the three frames side by side, with the readouts (a PIL image)
    wm.play.panel(models, val, cfg)      # the same with buttons, in Jupyter or Colab

The logic (`PlaySession`) knows nothing about widgets, so the tests drive it without a browser;
`panel` only wires buttons to it.

Where the game starts. The real side is the emulator the data came from (`make_env`: frameskip 4,
no sticky actions). With no sticky actions Boxing is deterministic from `env.reset()`: replaying a
validation episode's recorded actions reproduces every recorded 64x64 frame and reward exactly
(checked on all 4 validation episodes of the default cache, 7,140 steps, whatever the reset seed).
So the session replays the chosen validation episode up to the end of a held-out context window,
and the models observe exactly the frames they would be scored on. `replay_exact` says whether the
replay matched the recorded frames this time (it warns if not; the session then carries on from
the emulator's frames, which are the ones the models observe).

How a model takes one step: `imagine(state, [action])`, the loop the evaluation runs, for one
action; it returns the state after that action (the Transformer's KV cache with the two new tokens,
the RSSM's h_{t+1}), which the next step continues from. A step therefore costs one imagination
step whatever the number of steps since the last re-sync.
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..config import ExperimentConfig
from ..data import make_env, resize_frame, to_float_frames, to_uint8_frames
from ..evaluation.rollouts import token_agreement
from .animate import BACKGROUND, INK, font

SCALE = 4  # each 64x64 frame is drawn 256 x 256 (nearest neighbour: pixels stay pixels)
MARGIN, GAP = 10, 14  # pixels around the image and between the panels
TITLE_H, READOUT_H = 30, 72  # the title row above the frames, the readout rows below
MUTED = (110, 110, 110)  # the third readout line: imagined steps since the last re-sync
HINT = ("Click an action: the real game and both world models take it (re-sync restarts the models from "
        "the last real frames). Playing needs a live kernel: in a static view (GitHub, a saved HTML page) "
        "open the notebook in Jupyter or Colab to play.")


# --------------------------------------------------------------------------------------------
# Small conversions
# --------------------------------------------------------------------------------------------
def _to_model(frames: list) -> torch.Tensor:
    """uint8 frames [T, 64, 64, 3] -> one batch [1, T, 3, 64, 64] in [0, 1], as the models read them."""
    return to_float_frames(np.stack(frames))[None]


def _quiet_env(cfg: ExperimentConfig):
    """`make_env` without ALE's start-up banner, which would print in red above the panel (stderr).

    The banner is printed when an ALEInterface is constructed; ale-py's env switches the (global)
    logger to errors-only right after, so switching it a moment earlier changes nothing else."""
    try:
        from ale_py import ALEInterface, LoggerMode

        ALEInterface.setLoggerMode(LoggerMode.Error)
    except (ImportError, AttributeError):  # pragma: no cover  (an ale-py without the switch: keep the banner)
        pass
    return make_env(cfg)


# --------------------------------------------------------------------------------------------
# One world model's side of the session
# --------------------------------------------------------------------------------------------
class _Imagination:
    """A world model, the state it imagines from, its current token, frame and predicted reward."""

    def __init__(self, model):
        self.model, self.device = model, model.device

    def sync(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Observe a real context (obs [1, C, 3, 64, 64], actions [1, C-1]): the current token is the
        model's posterior token of the last real frame, so its frame is its reconstruction of it."""
        self.state = self.model.observe(obs.to(self.device), actions.to(self.device))
        self.latent, self.reward, self.since_sync = self.state["latent"], None, 0
        self.frame = to_uint8_frames(self.model.decode(self.latent)[0])

    def encode_last(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The model's posterior-mode token [D] of the last real frame. The RSSM's posterior reads its
        history, so every model encodes the whole real context and its actions."""
        return self.model.encode(obs.to(self.device), actions.to(self.device))[0, -1]

    def advance(self, action: int) -> None:
        """Imagine one step with `action` from the current state (mode latents, like the evaluation)."""
        action = torch.tensor([[action]], dtype=torch.long, device=self.device)
        out = self.model.imagine(self.state, action)
        self.state, latent, reward = out["state"], out["latent"][:, 0], out["reward"][:, 0]
        self.latent, self.reward, self.since_sync = latent, float(reward[0]), self.since_sync + 1
        self.frame = to_uint8_frames(self.model.decode(latent)[0])


# --------------------------------------------------------------------------------------------
# The headless session
# --------------------------------------------------------------------------------------------
class PlaySession:
    """The real game and every world model, driven by the same actions; no widgets.

    models  {name: world model}: anything with observe / imagine / encode / decode (both world
            models of this project). They are put in eval mode (no dropout), as the evaluation does.
    val     the validation EpisodeDataset: the game starts from one of its held-out context windows.
    cfg     the ExperimentConfig: the emulator settings, cfg.context and the latent shape.
    start   row of `val` where the context window begins (default 0: the first frames of the first
            validation episode, the window of the notebook's rollout GIF).

    Attributes worth reading: action_names (this game's, e.g. NOOP, FIRE, UP, ...), step_count (real
    steps since the start), last (what the latest step returned), replay_exact (see the module doc).
    """

    def __init__(self, models: dict, val, cfg: ExperimentConfig, start: int = 0):
        if not models:
            raise ValueError("PlaySession needs at least one world model, e.g. {'RSSM': rssm, 'Transformer': tf}")
        if "real" in models:
            raise ValueError("'real' names the real game's frame; give the world model another name")
        self.cfg, self.val, self.context = cfg, val, cfg.context
        self.env = _quiet_env(cfg)
        self.action_names = tuple(self.env.unwrapped.get_action_meanings())
        for name, model in models.items():
            n = getattr(model, "num_actions", self.num_actions)
            if n != self.num_actions:
                raise ValueError(f"world model {name!r} takes {n} actions; {cfg.env_id} has {self.num_actions}")
            model.eval()
        self.sides = {name: _Imagination(model) for name, model in models.items()}
        self.start = self._checked_start(start)
        self.restart()

    # ---- actions ------------------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def action_index(self, action) -> int:
        """The action as an index: an int in [0, num_actions) or one of `action_names`; else a ValueError."""
        if isinstance(action, str) and action in self.action_names:
            return self.action_names.index(action)
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < self.num_actions:
            return int(action)
        names = ", ".join(f"{i} {name}" for i, name in enumerate(self.action_names))
        raise ValueError(f"action {action!r} is not an action of {self.cfg.env_id}: give an int in "
                         f"[0, {self.num_actions}) or a name ({names})")

    # ---- the three moves ---------------------------------------------------------------------
    def _checked_start(self, start: int) -> int:
        episode, C = self.val.arrays["episode"], self.context
        if not (isinstance(start, (int, np.integer)) and 0 <= start <= len(episode) - C):
            raise ValueError(f"start={start!r}: need a row in [0, {len(episode) - C}] of the validation data")
        if episode[start] != episode[start + C - 1]:
            raise ValueError(f"start={start}: rows {start}..{start + C - 1} cross an episode end; "
                             f"a context window of {C} frames must lie in one episode")
        return int(start)

    @torch.no_grad()
    def restart(self) -> dict:
        """Put the real game at the held-out window (replaying its episode from reset) and sync the models."""
        episode, obs, actions = self.val.arrays["episode"], self.val.arrays["obs"], self.val.arrays["action"]
        first = int(np.flatnonzero(episode == episode[self.start])[0])  # every episode starts at a reset
        end = self.start + self.context - 1  # the last context frame
        frame, _ = self.env.reset(seed=self.cfg.seed)
        frames = [resize_frame(frame, self.cfg.frame_size)]
        for row in range(first, end):
            frame, *_ = self.env.step(int(actions[row]))
            frames.append(resize_frame(frame, self.cfg.frame_size))
        self.replay_exact = bool(np.array_equal(np.stack(frames), obs[first : end + 1]))
        if not self.replay_exact:
            warnings.warn("replaying the validation episode did not reproduce its recorded frames; the session "
                          "goes on from the emulator's frames (the models observe those)", stacklevel=2)
        self.frames = frames[-self.context :]
        self.actions = [int(a) for a in actions[end - self.context + 1 : end]]  # the C-1 actions between them
        self.step_count, self.done = 0, False
        return self.resync()

    @torch.no_grad()
    def resync(self) -> dict:
        """Restart every model from the last cfg.context real frames and the actions between them.

        Afterwards each model's frame is its reconstruction of the current real frame (the decoded
        posterior token), and its token agreement is 1."""
        obs, actions = _to_model(self.frames), torch.tensor([self.actions], dtype=torch.long)
        for side in self.sides.values():
            side.sync(obs, actions)
        self.last = self._result(action=None, real_reward=None)
        return self.last

    @torch.no_grad()
    def step(self, action) -> dict:
        """One step of the real game and of every model with the same action; returns `last` (see `_result`)."""
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

    # ---- readouts ------------------------------------------------------------------------------
    def _result(self, action, real_reward) -> dict:
        """What a step returns:

            step             real steps since the start; action, action_name: the one just taken (None at a sync)
            frames           {"real": uint8 [64, 64, 3], model name: its imagined frame, same layout}
            token_agreement  {model name: fraction of the 32 categoricals of its imagined token equal to
                             its posterior-mode token of the real frame}
            predicted_reward {model name: the reward it predicts for the action (None right after a sync)}
            real_reward      the game's reward for the action (None at a sync)
            since_sync       imagined steps since the models last observed real frames
            done             the real game is over (restart() to play again)
        """
        real = self.frames[-1]
        obs, actions = _to_model(self.frames), torch.tensor([self.actions], dtype=torch.long)
        agreement = {name: float(token_agreement(side.latent[0], side.encode_last(obs, actions), self.cfg.latent_vars))
                     for name, side in self.sides.items()}
        return {
            "step": self.step_count, "action": action,
            "action_name": None if action is None else self.action_names[action],
            "frames": {"real": real, **{name: side.frame for name, side in self.sides.items()}},
            "token_agreement": agreement,
            "predicted_reward": {name: side.reward for name, side in self.sides.items()},
            "real_reward": real_reward,
            "since_sync": next(iter(self.sides.values())).since_sync,
            "done": self.done,
        }

    def summary(self) -> str:
        """The latest readouts in one line (the panel's status line)."""
        r = self.last
        what = "synced to the real frames" if r["action"] is None else r["action_name"]
        parts = [f"step {r['step']}: {what}"]
        if r["real_reward"] is not None:
            parts.append(f"real reward {r['real_reward']:+g}")
        for name, agree in r["token_agreement"].items():
            reward = r["predicted_reward"][name]
            parts.append(f"{name} token agreement {agree:.0%}" + ("" if reward is None else f", reward {reward:+.2f}"))
        if r["done"]:
            parts.append("game over: restart")
        return " · ".join(parts)

    def render(self) -> Image.Image:
        """The real frame and every model's frame side by side (each SCALE x), titled, readouts below."""
        r, V = self.last, self.cfg.latent_vars
        panels = [("real game", r["frames"]["real"])] + [(f"{n} imagines", r["frames"][n]) for n in self.sides]
        side = SCALE * self.cfg.frame_size
        width = 2 * MARGIN + len(panels) * side + (len(panels) - 1) * GAP
        image = Image.new("RGB", (width, MARGIN + TITLE_H + side + READOUT_H), BACKGROUND)
        draw = ImageDraw.Draw(image)
        title_font, text_font = font(20), font(15)
        action = "synced to the real frames" if r["action"] is None else f"action {r['action_name']}"
        real_reward = "" if r["real_reward"] is None else f"real reward {r['real_reward']:+g}"
        readouts = [[f"step {r['step']} · {action}", real_reward, f"{r['since_sync']} imagined steps since re-sync"]]
        for name in self.sides:
            agree, reward = r["token_agreement"][name], r["predicted_reward"][name]
            readouts.append([f"token agreement {round(agree * V)}/{V} ({agree:.0%})",
                             "" if reward is None else f"predicted reward {reward:+.2f}"])
        for i, ((title, frame), lines) in enumerate(zip(panels, readouts)):
            x = MARGIN + i * (side + GAP)
            draw.text((x, MARGIN), title, fill=INK, font=title_font)
            big = np.repeat(np.repeat(frame, SCALE, axis=0), SCALE, axis=1)  # nearest-neighbour upscale
            image.paste(Image.fromarray(big), (x, MARGIN + TITLE_H))
            for k, line in enumerate(lines):
                draw.text((x, MARGIN + TITLE_H + side + 6 + 19 * k), line, fill=INK if k < 2 else MUTED,
                          font=text_font)
        return image

    def render_png(self) -> bytes:
        """`render()` as PNG bytes (what the panel's Image widget shows)."""
        buf = io.BytesIO()
        self.render().save(buf, format="PNG")
        return buf.getvalue()


# --------------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------------
class _PanelOutput:
    """Displays the panel where widgets render, and the still image of the first step everywhere else.

    One output carries three representations and each front end shows the richest it can: the live
    widget (JupyterLab, Jupyter Notebook, VS Code, Colab), else the PNG (nbconvert without widget
    state, GitHub), else one line of text. Without this, a static view shows the widget's text
    fallback: "VBox(children=(Image(value=b'\\x89PNG...".
    """

    def __init__(self, widget, png: bytes):
        self.widget, self.png = widget, png

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data, **{"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": repr(self)})
        return (data, meta) if meta else data

    def __repr__(self) -> str:
        return "(the play panel: open the notebook in Jupyter or Colab to play)"


def _in_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def controls(session: PlaySession):
    """The ipywidgets panel of a session: the image, one button per action (a click steps with it),
    "step again" (repeats the last action), "re-sync", "restart", and a one-line status.

    A callback never raises: an error is shown as one line in the status, in red."""
    import html

    import ipywidgets as widgets

    image = widgets.Image(value=session.render_png(), format="png")
    status = widgets.HTML()
    chosen = {"action": 0}
    again = widgets.Button(description="step again: NOOP", tooltip="repeat the last action", icon="play",
                           layout=widgets.Layout(width="240px"))

    def show(error: Exception | None = None) -> None:
        image.value = session.render_png()
        line = html.escape(session.summary())
        if error is not None:  # one line, never a traceback
            message = str(error).splitlines()[0] if str(error) else ""
            line = f"<span style='color:#b00020'>{type(error).__name__}: {html.escape(message)}</span>"
        status.value = f"<span style='font-family:monospace'>{line}</span>"

    def safely(move):
        def callback(_button=None):
            try:
                move()
                show()
            except Exception as error:  # noqa: BLE001  (the panel shows any failure as one line)
                try:
                    show(error)
                except Exception:  # noqa: BLE001  (even the redraw failed: keep the panel alive)
                    status.value = f"{type(error).__name__}: {html.escape(str(error).splitlines()[0])}"
        return callback

    def choose(index: int):
        def move():
            chosen["action"] = index
            again.description = f"step again: {session.action_names[index]}"
            session.step(index)
        return move

    buttons = []
    for index, name in enumerate(session.action_names):
        button = widgets.Button(description=name, tooltip=f"step with action {index} ({name})",
                                layout=widgets.Layout(width="auto"))
        button.on_click(safely(choose(index)))
        buttons.append(button)
    again.on_click(safely(lambda: session.step(chosen["action"])))
    resync = widgets.Button(description="re-sync", icon="refresh",
                            tooltip="restart both models from the last real frames")
    resync.on_click(safely(session.resync))
    restart = widgets.Button(description="restart", icon="undo", tooltip="back to the held-out window")
    restart.on_click(safely(session.restart))
    grid = widgets.GridBox(buttons, layout=widgets.Layout(grid_template_columns="repeat(6, 150px)", grid_gap="4px"))
    show()
    return widgets.VBox([image, status, grid, widgets.HBox([again, resync, restart])])


def panel(models: dict, val, cfg: ExperimentConfig, start: int = 0) -> PlaySession:
    """Play in a notebook: three frames (the real game, each model's imagination), action buttons,
    re-sync. Prints one line on how to play, shows the panel where widgets render and the still image
    of the first step elsewhere, and returns the session (its widget is `session.widget`)."""
    from IPython.display import Image as StillImage
    from IPython.display import display

    session = PlaySession(models, val, cfg, start)
    still = session.render_png()
    print(HINT)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print("(ipywidgets is not installed: pip install ipywidgets, then run this cell again)")
        display(StillImage(still))
        return session
    in_colab = _in_colab()
    if in_colab:
        try:  # Colab renders ipywidgets 8 through its custom widget manager
            from google.colab import output

            output.enable_custom_widget_manager()
        except (ImportError, AttributeError) as err:  # an older Colab: the still image below still shows
            print(f"(Colab's custom widget manager is not available here: {err}; the buttons may not render)")
            in_colab = False
    session.widget = controls(session)
    # Colab always has a live kernel and widget manager: show the plain widget there (also where an
    # old ipywidgets has no _repr_mimebundle_ to extend)
    plain = in_colab or not hasattr(session.widget, "_repr_mimebundle_")
    display(session.widget if plain else _PanelOutput(session.widget, still))
    return session
