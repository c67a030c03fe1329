"""Notebook tools: plots (every figure), animate (the rollout GIF), one_token (Section 1's demo),
teach (show_source), describe (the device line), play (PlaySession and its panel).
"""
