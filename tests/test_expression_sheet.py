"""benchmarks/expression_sheet.py picks the moments of a truth clip that show the follower: neutral, the middle of
the held smile, the widest mouth, the first shut blink."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "expression_sheet.py"
_spec = importlib.util.spec_from_file_location("expression_sheet", _PATH)
sheet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sheet)


def test_the_moments_come_from_the_schedule():
    n = 60
    eyes, mouth, smile = np.zeros(n), np.zeros(n), np.zeros(n)
    eyes[5:8] = [0.5, 1.0, 0.5]
    mouth[20:25] = [0.1, 0.2, 0.3, 0.2, 0.1]
    smile[40:44] = 0.5
    smile[44:50] = 1.0
    truth = SimpleNamespace(schedule={"eyes": eyes, "mouth": mouth, "smile": smile})
    picks = dict(sheet.moments(truth))
    assert picks["blink"] == 6
    assert picks["mouth open"] == 22
    assert 44 <= picks["held smile"] < 50
    quiet = picks["neutral"]
    assert eyes[quiet] == mouth[quiet] == smile[quiet] == 0.0
    # a clip without a smile or a blink: those rows are left out, not made up
    truth.schedule["smile"][:] = 0.0
    truth.schedule["eyes"][:] = 0.0
    assert [name for name, _ in sheet.moments(truth)] == ["neutral", "mouth open"]


def test_the_face_box_is_square_and_inside_the_frame():
    lm = np.array([[10.0, 20.0], [50.0, 90.0]])
    x0, y0, x1, y1 = sheet.face_box(lm, (100, 120))
    assert x0 >= 0 and y0 >= 0 and x1 <= 120 and y1 <= 100
    assert x1 - x0 > 40 and y1 - y0 > 60
