"""Notebook tools: what puts the experiment on the page.

    plots.py       every figure in the notebook
    animate.py     the rollout GIF (truth | RSSM | Transformer)
    one_token.py   Section 1's demo: one index of 32 classes vs 32 indices per frame
    teach.py       show_source: the package's own code on the notebook page
    describe.py    the device line: device, precision, budget and the fast paths in use
    play.py        play inside both world models: a headless PlaySession and the ipywidgets panel
"""
