"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) for smoothing landmarks over time.

A low-pass filter whose cutoff rises with the signal's speed: a still face gets a low cutoff (jitter removed), a
moving face a high one (little lag). Works element-wise on an array of any fixed shape (e.g. 68x2 landmarks), so
each coordinate adapts to its own speed.

Parameters (the paper's names):
- ``min_cutoff`` (Hz): cutoff when the signal is still. Lower = smoother, more lag at rest.
- ``beta`` (1 / signal unit): how fast the cutoff grows with speed; for pixel landmarks the speed is in px/s, so
  ``beta=0.05`` adds 5 Hz of cutoff at 100 px/s. Higher = less lag when moving.
- ``d_cutoff`` (Hz): cutoff of the low-pass on the speed estimate itself.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def smoothing_factor(cutoff: NDArray[np.float64] | float, dt: float) -> NDArray[np.float64]:
    """Exponential smoothing factor of a first-order low-pass with ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """``filter(x, t) -> x_smoothed`` for x of a fixed shape, t in seconds (monotonic). ``reset()`` forgets state."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        for name, value, allow_zero in (
            ("min_cutoff", min_cutoff, False),
            ("beta", beta, True),
            ("d_cutoff", d_cutoff, False),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"OneEuroFilter {name}={value!r}, expected a finite number")
            if value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"OneEuroFilter {name}={value!r}, expected {'>= 0' if allow_zero else '> 0'}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the history (call when the tracked face is lost or a different face appears)."""
        self._x: NDArray[np.float64] | None = None
        self._dx: NDArray[np.float64] | None = None
        self._t: float | None = None
        self._dtype: np.dtype | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"OneEuroFilter input has dtype {x.dtype}, expected a numeric array")
        if not np.all(np.isfinite(x)):
            raise ValueError("OneEuroFilter input contains NaN or inf")
        if not math.isfinite(t):
            raise ValueError(f"OneEuroFilter timestamp t={t!r} is not finite")
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        value = x.astype(np.float64)
        if self._x is None or self._dx is None or self._t is None:  # all three are set together
            self._x, self._dx, self._t = value, np.zeros_like(value), float(t)
            return value.astype(out_dtype)
        if value.shape != self._x.shape:
            raise ValueError(
                f"OneEuroFilter input has shape {value.shape}, but the filter was started with "
                f"{self._x.shape}; call reset() when the number of points changes"
            )
        dt = float(t) - self._t
        if dt < 0:
            raise ValueError(f"OneEuroFilter timestamp went backwards: t={t} after t={self._t}")
        if dt == 0:
            # A duplicate timestamp (same frame delivered twice) carries no new timing information: keep the state.
            return self._x.astype(out_dtype)
        speed = (value - self._x) / dt
        self._dx = self._dx + smoothing_factor(self.d_cutoff, dt) * (speed - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + smoothing_factor(cutoff, dt) * (value - self._x)
        self._t = float(t)
        return self._x.astype(out_dtype)
