"""What a user may switch while the swap runs, one table for every front end: the CLI flags set the start values,
the window's keys (``swapcam live --sink window``) and the WebRTC page's controls change them live, between two
frames, without restarting the camera or the landmark tracker.

``SWITCHES`` names each switchable pipeline option with its values (choices, a numeric range or on/off) and its
window key; :func:`apply_changes` validates a mapping of changes (the page's JSON, a key press) into new
:class:`realtime.pipeline.PipelineOptions`, raising ValueError that names the bad key or value.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from realtime.colour import COLOUR_MODES
from realtime.compose import BLEND_MODES
from realtime.eyes import EYES_MODES
from realtime.mouth import MOUTH_MODES
from realtime.occlusion import OCCLUSION_MODES
from realtime.pipeline import PipelineOptions
from realtime.selection import FACE_CHOICES
from realtime.temporal import MAX_WEIGHT
from realtime.upscale import SHARPEN_MODES

log = logging.getLogger("swapcam.controls")


@dataclass(frozen=True)
class Switch:
    name: str
    key: str  # window key that cycles / toggles it ('' = none); numbers: key lowers, key_up raises
    choices: tuple[str, ...] = ()
    low: float | None = None  # numeric range (inclusive) ...
    high: float | None = None
    step: float = 0.0  # ... and the step of a key press
    key_up: str = ""
    text: str = ""

    @property
    def kind(self) -> str:
        return "choice" if self.choices else ("number" if self.low is not None else "bool")

    def check(self, value: object) -> object:
        """``value`` if it is valid for this switch, else ValueError naming the switch and the value."""
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{self.name}={value!r}; choose from {', '.join(self.choices)}")
            return value
        if self.low is not None and self.high is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
                raise ValueError(f"{self.name}={value!r}; expected a number in {self.low:g}..{self.high:g}")
            return float(value)
        if not isinstance(value, bool):
            raise ValueError(f"{self.name}={value!r}; expected true or false")
        return value


SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in (
        Switch("mouth", "m", MOUTH_MODES, text="the camera's own mouth: auto (as it opens), keep (always), swap"),
        Switch("eyes", "e", EYES_MODES, text="the swap's eyelids follow the camera's blinks (follow) or not (swap)"),
        Switch(
            "expression",
            ",",
            low=0.0,
            high=1.0,
            step=0.25,
            key_up=".",
            text="how much of the camera's smile, lips and brows the swap takes on",
        ),
        Switch("sharpen", "s", SHARPEN_MODES, text="the face: as soft as the camera (match), as drawn, sharpened"),
        Switch("blend", "b", BLEND_MODES, text="seam blend at the face's edge"),
        Switch("occlusion", "o", OCCLUSION_MODES, text="hands and objects in front of the face stay in front"),
        Switch("colour", "c", COLOUR_MODES, text="colour transfer to the camera's face"),
        Switch("faces", "f", FACE_CHOICES, text="which faces are swapped: all of them, or the largest only"),
        Switch(
            "morph", "[", low=0.0, high=1.0, step=0.05, key_up="]", text="towards the model's face (re-centring, AMP)"
        ),
        Switch("temporal", "", low=0.0, high=MAX_WEIGHT, text="weight of the past in colour and mask smoothing"),
        Switch("hud", "h", text="fps and per-stage milliseconds on the output"),
        Switch("label", "l", text="the visible 'synthetic video' label"),
    )
}


def describe() -> dict[str, dict[str, object]]:
    """The switches as JSON (the WebRTC page builds its controls from it)."""
    return {
        s.name: {
            "kind": s.kind,
            "choices": list(s.choices),
            "low": s.low,
            "high": s.high,
            "step": s.step or None,
            "text": s.text,
        }
        for s in SWITCHES.values()
    }


def key_help() -> str:
    """One line for the window: which key does what."""
    parts = []
    for s in SWITCHES.values():
        if s.key_up:
            parts.append(f"{s.key} {s.key_up} {s.name}")
        elif s.key:
            parts.append(f"{s.key} {s.name}")
    return " | ".join([*parts, "q quit"])


def current(options: PipelineOptions) -> dict[str, object]:
    """The switchable part of ``options`` (what the page shows)."""
    return {name: getattr(options, name) for name in SWITCHES}


def apply_changes(options: PipelineOptions, changes: Mapping[str, object]) -> PipelineOptions:
    """New options with ``changes`` (switch name -> value) applied; ValueError for an unknown name or a bad value."""
    unknown = sorted(set(changes) - set(SWITCHES))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; known: {', '.join(SWITCHES)}")
    checked: dict = {name: SWITCHES[name].check(value) for name, value in changes.items()}
    return dataclasses.replace(options, **checked)


def key_change(options: PipelineOptions, key: str) -> tuple[PipelineOptions, str] | None:
    """The options after pressing ``key`` in the window, and what changed ("mouth: keep"); None for other keys."""
    for s in SWITCHES.values():
        value = getattr(options, s.name)
        if s.choices and key == s.key:
            new: object = (
                s.choices[(s.choices.index(value) + 1) % len(s.choices)] if value in s.choices else s.choices[0]
            )
        elif s.kind == "number" and key in (s.key, s.key_up) and s.key:
            assert s.low is not None and s.high is not None
            delta = s.step if key == s.key_up else -s.step
            new = round(min(s.high, max(s.low, float(value) + delta)), 6)
        elif s.kind == "bool" and key == s.key:
            new = not value
        else:
            continue
        shown = new if not isinstance(new, bool) else ("on" if new else "off")
        return apply_changes(options, {s.name: new}), f"{s.name}: {shown}"
    return None


class Switchboard:
    """The window's keys -> a running stream (realtime.runner.LiveRunner): each key press that names a switch
    (:func:`key_change`) becomes a runner.reconfigure between two frames, said in one log line. A switch the
    stream refuses (it raised: a sharpener whose model does not load) is said in one line to ``notice`` (the
    window's bottom line) and the log, and the keys go on from the options still in force."""

    def __init__(self, options: PipelineOptions, notice: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.runner = None
        self.notice = notice
        self.refusals: list[str] = []

    def attach(self, runner) -> None:
        self.runner = runner
        log.info("keys: %s", key_help())

    def key(self, char: str) -> str | None:
        """Handle one key; returns what changed ("mouth: keep") or None."""
        change = key_change(self.options, char)
        if change is None or self.runner is None:
            return None
        self.options, text = change
        self.runner.reconfigure(options=self.options, on_refused=lambda line: self._refused(text, line))
        log.info("%s", text)
        return text

    def _refused(self, text: str, line: str) -> None:
        """In the inference thread: the processor kept its options, so the next key starts from them."""
        assert self.runner is not None
        self.options = self.runner.processor.options
        message = f"{text}: {line}"
        self.refusals.append(message)
        if self.notice is not None:
            self.notice(message)
