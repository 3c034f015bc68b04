"""Training schedules as pure functions of the step: learning rate (linear warm-up, then constant or cosine decay)
and random-warp strength (full early, faded out late).

Why: a high learning rate from step 0 can blow up a fresh model (warm-up avoids it); decaying it at the end lets the
weights settle into detail instead of hopping around it. Random warp forces the shared encoder to describe faces
rather than copy pixels, which matters early; late in training it only blurs what the decoders learn, so it fades out
and the last steps train on clean faces (the "warp off" phase of the well-known trainers).
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def learning_rate(
    step: int, total: int, base: float, warmup: int = 0, schedule: str = "constant", final: float = 0.1
) -> float:
    """The learning rate for optimisation step ``step`` (0-based) of ``total``: linear warm-up over ``warmup`` steps
    from base/warmup to base, then ``base`` (constant) or a cosine from ``base`` down to ``final * base`` at the end."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return base
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    return base * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def warp_strength(step: int, total: int, base: float, off_at: float = 1.0, fade: float = 0.25) -> float:
    """Random-warp strength at ``step``: ``base`` until the fade starts, then linearly down to 0 at ``off_at`` (a
    fraction of ``total``), 0 after. ``off_at`` >= 1 keeps the warp on for the whole run."""
    if off_at >= 1.0 or base <= 0:
        return base
    end = off_at * total
    start = max(0.0, end - fade * total)
    if step < start:
        return base
    if step >= end:
        return 0.0
    return base * (end - step) / max(1e-9, end - start)
