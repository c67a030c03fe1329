"""Command line: python -m wmhelpers {train-rssm, seeds, benchmark, run-notebook, check-notebook}."""

from __future__ import annotations

import argparse
import json
import sys


def _config(args):
    """A command's ExperimentConfig: the smoke one with --smoke, else from the environment; with
    --threads N (where the command has it) torch uses N CPU threads."""
    import torch

    from .config import ExperimentConfig

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    return ExperimentConfig.smoke() if args.smoke else ExperimentConfig.from_env()


def train_rssm(args) -> int:
    from .data import load_or_collect
    from .models.rssm import RSSMWorldModel
    from .runs.checkpoints import save_checkpoint
    from .training.loop import train_world_model

    cfg = _config(args)
    data = load_or_collect(cfg)
    train, val = data.split(cfg)
    model = RSSMWorldModel.from_config(cfg, num_actions=data.num_actions)
    history = train_world_model(model, train, val, cfg, desc="training RSSM (P03 baseline)")
    out = args.out or f"{cfg.checkpoint_dir}/p03_rssm.pt"
    save_checkpoint(out, model, cfg, history, data)
    print(f"Wrote {out}: {cfg.train_steps} steps in {history['train_seconds']:.0f} s "
          f"({history['ms_per_step']:.0f} ms/step on {history['device']}), "
          f"final validation next-frame MSE {history['val_next_frame_mse'][-1]:.5f}, "
          f"KL {history['val']['kl'][-1]:.2f} nats")
    return 0


def benchmark(args) -> int:
    from .runs.benchmark import run_benchmark

    cfg = _config(args)
    res = run_benchmark(cfg, sweep=not args.no_sweep)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


def seeds_cmd(args) -> int:
    from .runs.train_seeds import run_seeds

    run_seeds(_config(args), args.seeds, kinds=tuple(args.models), out=args.out, variant=args.variant,
              memory=args.memory or args.long, long=args.long)
    return 0


def reward_probe_cmd(args) -> int:
    from .runs.reward_probe import run_reward_probe

    run_reward_probe(_config(args), steps=args.steps, out=args.out)
    return 0


def check_notebook_cmd(args) -> int:
    from .notebook_runner import check_notebook

    problems = check_notebook(args.path)
    if problems:
        print(f"{args.path}: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"{args.path}: OK (executed in order, no errors, deliverable figures and conclusion present)")
    return 0


def run_notebook_cmd(args) -> int:
    from .notebook_runner import run_notebook

    info = run_notebook(args.path, out=args.out, smoke=args.smoke)
    print(f"Executed {args.path} in {info['seconds']:.0f} s" + (" (smoke mode)" if args.smoke else ""))
    for heading, secs in info["sections"].items():
        print(f"  {secs:7.1f} s  {heading}")
    return 0


def _options(p, out: str, smoke: str = "tiny budgets", threads: bool = False) -> None:
    """The options the commands share: --out, --smoke and, where a command trains, --threads."""
    if threads:
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", help=out)
    p.add_argument("--smoke", action="store_true", help=f"{smoke} (same as WM_SMOKE=1)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wmhelpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-rssm", help="train the P03 RSSM baseline and write checkpoints/p03_rssm.pt")
    _options(p, out="checkpoint path (default: <checkpoint_dir>/p03_rssm.pt)")
    p.set_defaults(fn=train_rssm)
    p = sub.add_parser("benchmark", help="step times, KV-cache vs recompute, attention-cost sweep (JSON)")
    _options(p, out="also write the JSON to this file", smoke="tiny data")
    p.add_argument("--no-sweep", action="store_true", help="skip the attention-cost sweep")
    p.set_defaults(fn=benchmark)
    p = sub.add_parser("seeds", help="train both world models per training seed (resumable) and write "
                                     "checkpoints/p04_seeds.json")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds (default 0-4)")
    p.add_argument("--models", nargs="+", choices=("rssm", "transformer"), default=["rssm", "transformer"],
                   help="train only these (to run two processes side by side); evaluation and the file need both")
    p.add_argument("--variant", choices=("tf2",), help="train and evaluate a named Transformer variant instead "
                                                        "of the pair (tf2: the 2-layer ablation)")
    p.add_argument("--memory", action="store_true", help="run the cue-recall experiment (Section 6) for each seed "
                                                         "not yet in the file (two processes may split the seeds)")
    p.add_argument("--long", action="store_true", help="with --memory: the cue-recall experiment at the longer "
                                                       "budget (where the learning curves flatten)")
    _options(p, out="seeds file (default: <checkpoint_dir>/p04_seeds.json)", threads=True)
    p.set_defaults(fn=seeds_cmd)
    p = sub.add_parser("reward-probe", help="train small classifiers on real frames for the reward ceiling and "
                                            "write checkpoints/reward_probe.json")
    p.add_argument("--steps", type=int, default=600, help="training steps per view (default 600)")
    _options(p, out="output file (default: <checkpoint_dir>/reward_probe.json)", smoke="tiny data", threads=True)
    p.set_defaults(fn=reward_probe_cmd)
    p = sub.add_parser("run-notebook", help="execute the notebook top to bottom in a fresh kernel, in place")
    p.add_argument("path", nargs="?", default="p04_transformer_backbone.ipynb")
    _options(p, out="write the executed notebook here instead of in place")
    p.set_defaults(fn=run_notebook_cmd)
    p = sub.add_parser("check-notebook", help="check an executed notebook for grading")
    p.add_argument("path")
    p.set_defaults(fn=check_notebook_cmd)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
