"""Evaluation: how the trained models are scored and compared, one place per concept.

    psnr.py       PSNR maths: whole-frame and changed-pixel, capped at the 8-bit quantization limit
    stats.py      95 % t-intervals: over windows (one trained pair) and over training seeds
    rollouts.py   the fixed evaluation windows, open-loop rollouts, every curve and baseline
    tables.py     the text tables of mean PSNR
    seeds.py      the seeds file: each seed's scores, the spread over seeds, the seed table
    verdict.py    the conclusion written by the run: facts -> one Markdown paragraph
    wallclock.py  wall clock only on one device: retrain on a GPU, or project from a burst timed here
    results.py    checkpoints/p04_results.json for P05

Like the trainer, the evaluation only calls the world-model interface: it reaches no backbone module.
"""
