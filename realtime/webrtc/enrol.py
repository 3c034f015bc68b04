"""The demo page's "use my face": one peer enrols itself while the call runs, then swaps with its own model.

1. capturing: the peer's swap worker shows every camera frame and its landmarks to :meth:`WebEnrolment.observe`
   (the worker thread: no extra landmark pass). Faces the quality gate accepts (realtime.coverage: not blurry, dark,
   over-exposed, partial or too small) are written to FOLDER/capture.mp4 and counted by the coverage meter, whose
   share and next prompt ("turn your head a little to your left") go to the page every second.
2. training: when the meter is full, or after ``capture_seconds`` (longer, up to 3x, while fewer faces than enroll
   needs were captured), or when the page says "train now", the capture
   is closed and ``swapcam enroll --source FOLDER/capture.mp4 --out FOLDER --status ...`` runs in a subprocess (torch
   lives there, never in the server), fine-tuning the shipped model; its status file (step, steps) becomes the page's
   progress bar.
3. ready: the newest export in FOLDER is loaded and this peer's processor switches to it between two frames; the
   call goes on. Other peers keep the server's model. A later enrolment of the same peer replaces it.

What is kept: once the model is built, the capture video and the training run (faceset, checkpoint) are deleted and
only the model stays, while the peer uses it; :meth:`WebEnrolment.close` (the peer leaves, cancels, fails or enrols
again) deletes the folder; what a crashed server left is swept when the next one starts (:func:`sweep_enrolments`).
``keep`` (``swapcam serve --keep-enrolments``) keeps everything.

Failures stay in the enrolment: a capture video that cannot be written, a training that cannot start or fails, a
model that does not load end it with one line for the page (state "error"); the call goes on. Cancel never waits on
the event loop: :meth:`WebEnrolment.cancel` only signals, :meth:`WebEnrolment.close` (in a thread) waits.

Only one enrolment trains at a time per server (:data:`TRAINING_LOCK`): training takes the CPU.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE, align
from realtime.coverage import CoverageMeter, NearDuplicates, QualityGate
from realtime.types import Face, Image

log = logging.getLogger("swapcam.webrtc.enrol")

CAPTURE_FILE = "capture.mp4"
STATUS_FILE = "status.json"
LOG_FILE = "enroll.log"  # the subprocess's output (its last line is the error the page shows)
FULL_AT = 0.9  # coverage meter share that ends the capture early ...
# ... once this many faces passed the gate (as `swapcam enroll --source CAMERA` does: 4 x its 16-face minimum), so
# a head that fills the meter in two seconds still leaves enough distinct faces after the faceset's de-duplication
MIN_ACCEPTED = 64
WRITE_EVERY = 2  # of the accepted frames, every n-th is a candidate for the capture ...
# ... written only when it is not a near-duplicate of the last few written (the faceset's own rule, realtime.coverage
# NearDuplicates, on the crop `swapcam enroll` extracts: CROP_SIZE at the default coverage), so `written` counts the
# faces the faceset will keep. A head held still, or a fake camera looping a short clip, writes little.
CROP_SIZE = 128
# When capture_seconds are up with fewer faces written than `swapcam enroll` needs (its MIN_FACES, 16, plus a margin:
# the capture is compressed before enroll reads it back; a slow connection or a busy CPU delivers few frames), the
# capture goes on until it has them, up to OVERTIME x capture_seconds: an enrolment that could only fail is not
# started. (A CI run once captured 16 frames of which enroll kept 9: the rest were near-duplicates.)
MIN_WRITTEN = 20
OVERTIME = 3.0
STATES = ("capturing", "training", "ready", "error", "cancelled")
TRAINING_LOCK = threading.Lock()  # one enrolment trains at a time per server process
STOP_TIMEOUT_S = 10.0  # cancel: how long `swapcam enroll` may take to stop (it saves and exports) before it is killed


# the folder name SwapServer gives each enrolment: time, peer id, a number (only these are swept at start-up)
FOLDER_NAME = re.compile(r"\d{8}-\d{6}-[0-9a-f]{12}-\d+")


def sweep_enrolments(enroll_dir: str | Path) -> list[Path]:
    """Delete what a previous server left in ``enroll_dir`` (it crashed or was killed before its peers' enrolments
    were closed: a video of someone's face, a training run, a model). Only folders named as this server names its
    enrolments are touched, never anything else a user keeps there. Returns the folders removed. Called once at
    server start-up, unless --keep-enrolments; two servers must not share one --enroll-dir."""
    folder = Path(enroll_dir)
    if not folder.is_dir():
        return []
    swept = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.is_symlink() and FOLDER_NAME.fullmatch(p.name)]
    for path in swept:
        shutil.rmtree(path, ignore_errors=True)
    if swept:
        log.info("removed %d enrolment folder(s) a previous server left in %s", len(swept), folder)
    return swept


class WebEnrolment:
    """One peer's enrolment: capture (worker thread) -> ``swapcam enroll`` subprocess -> a model to switch to.

    ``enroll_args``: more ``swapcam enroll`` options (``--minutes``, ``--target``, ``--steps``, ...); ``keep``: never
    delete the folder's capture, training run or model (``swapcam serve --keep-enrolments``)."""

    def __init__(
        self,
        folder: str | Path,
        capture_seconds: float = 60.0,
        enroll_args: tuple[str, ...] = (),
        keep: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.capture_seconds = float(capture_seconds)
        self.enroll_args = tuple(enroll_args)
        self.keep = keep
        self.state = "capturing"
        self.meter = CoverageMeter()
        self.gate = QualityGate()
        self.duplicates = NearDuplicates()
        self.accepted = 0
        self.written = 0
        self.rejected: Counter[str] = Counter()
        self.model: Path | None = None
        self.message = ""
        self._lock = threading.Lock()
        self._writer: cv2.VideoWriter | None = None
        self._frame_size = (0, 0)
        self._proc: subprocess.Popen | None = None
        self._has_lock = False
        self._t0 = time.monotonic()
        self._close_lock = threading.Lock()  # close() waits for the subprocess: a second caller waits for the first
        self._closed = False

    # -- capture (the peer's worker thread) ---------------------------------------------------------------------
    def observe(self, image: Image, faces: list[Face]) -> None:
        with self._lock:
            if self.state != "capturing":
                return
            if not faces:
                self.rejected["no face"] += 1
            else:
                reason = self.gate(image, faces[0])
                if reason is not None:
                    self.rejected[reason] += 1
                else:
                    self.meter.update(np.asarray(faces[0].landmarks, np.float64))
                    if self.accepted % WRITE_EVERY == 0 and self._distinct(image, faces[0]):
                        self._write(image)
                        if self.state != "capturing":  # the video could not be written
                            return
                    self.accepted += 1
            full = self.meter.fraction() >= FULL_AT and self.accepted >= MIN_ACCEPTED
            elapsed = time.monotonic() - self._t0
            timed_out = elapsed >= self.capture_seconds and (
                self.written >= MIN_WRITTEN or elapsed >= OVERTIME * self.capture_seconds
            )
            done = full or timed_out
        if done:
            self.train()

    def _distinct(self, image: Image, face: Face) -> bool:
        """Whether this face is not a near-duplicate of the ones written lately (and remembered if so)."""
        try:
            crop, _ = align(image, np.asarray(face.landmarks, np.float64), CROP_SIZE, DEFAULT_COVERAGE)
        except ValueError:
            return False
        if self.duplicates.keep(crop):
            return True
        self.rejected["near-duplicate"] += 1
        return False

    def _write(self, image: Image) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            path = self.folder / CAPTURE_FILE
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (w, h))
            if not writer.isOpened():  # OpenCV says nothing: every write() would be dropped silently
                writer.release()
                self._fail(f"could not write the capture video {path} (not writable, or no mp4v encoder in OpenCV)")
                return
            self._writer, self._frame_size = writer, (w, h)
        if (w, h) == self._frame_size:  # the browser may change resolution mid-call: keep the first size only
            self._writer.write(image)
            self.written += 1

    # -- training (a subprocess) ----------------------------------------------------------------------------------
    def train(self) -> None:
        """End the capture and start `swapcam enroll` on it (the page's "train now", or the meter is full)."""
        with self._lock:
            if self.state != "capturing":
                return
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            if self.written == 0:
                self.state, self.message = "error", "no usable face was captured: more light, face the camera"
                return
            if not TRAINING_LOCK.acquire(blocking=False):
                self.state, self.message = "error", "another enrolment is training on this server; try again later"
                return
            self._has_lock = True
            status = self.folder / STATUS_FILE
            status.unlink(missing_ok=True)
            command = self.enroll_command(status)
            log.info("enrolment in %s: training (%s)", self.folder, " ".join(command[3:]))
            # its output goes to a file, not a pipe: a pipe nobody reads while it runs could fill up and stall it
            try:
                with open(self.folder / LOG_FILE, "w") as log_file:
                    self._proc = subprocess.Popen(
                        command, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(Path.cwd())
                    )
            except OSError as exc:  # no such program, no permission, no processes or disk left
                self._release()
                self._fail(f"could not start the training ({command[0]}): {exc.strerror or exc}")
                return
            self.state = "training"

    def enroll_command(self, status: Path) -> list[str]:
        """The training subprocess: `swapcam enroll` on the capture, writing its progress to ``status``."""
        return [
            sys.executable,
            "-m",
            "realtime.cli",
            "enroll",
            "--source",
            str(self.folder / CAPTURE_FILE),
            "--out",
            str(self.folder),
            "--status",
            str(status),
            "--no-progress",
            *self.enroll_args,
        ]

    def _status(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def poll(self) -> dict[str, Any]:
        """The page's view, as a control-channel message; also notices the end of training."""
        with self._lock:
            message: dict[str, Any] = {"type": "enroll", "state": self.state}
            if self.state == "capturing":
                message |= {
                    "coverage": round(self.meter.fraction(), 3),
                    "prompt": self.meter.prompt(),
                    "faces": self.accepted,
                    "rejected": dict(self.rejected),
                    "seconds_left": max(0.0, round(self.capture_seconds - (time.monotonic() - self._t0), 1)),
                }
            elif self.state == "training" and self._proc is not None:
                status = self._status()
                message |= {k: status.get(k) for k in ("stage", "step", "steps", "seconds")}
                code = self._proc.poll()
                if code is not None:
                    self._finish(code, status)
                    message["state"] = self.state
            if self.state == "ready" and self.model is not None:
                message["model"] = self.model.name
            if self.state == "error":
                message["message"] = self.message
            return message

    def _finish(self, code: int, status: dict[str, Any]) -> None:
        try:
            output = (self.folder / LOG_FILE).read_text(errors="replace")
        except OSError:
            output = ""
        self._release()
        if code == 0 and status.get("stage") == "done" and status.get("model"):
            self.model = Path(status["model"])
            self.state = "ready"
            log.info("enrolment in %s: ready (%s)", self.folder, self.model.name)
            self._prune()
        else:
            lines = [line for line in output.strip().splitlines() if line.strip()]
            self.message = status.get("message") or (lines[-1] if lines else f"swapcam enroll exited with {code}")
            self.state = "error"
            log.warning("enrolment in %s failed: %s", self.folder, self.message)

    def _release(self) -> None:
        if self._has_lock:
            self._has_lock = False
            TRAINING_LOCK.release()

    def _prune(self) -> None:
        """The model is built: the capture video and the training run are not needed any more (unless ``keep``)."""
        if self.keep or self.model is None:
            return
        model = self.model.resolve()
        for path in self.folder.iterdir():
            if path.resolve() == model:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _fail(self, message: str) -> None:
        """End the enrolment with ``message`` for the page (the lock is held). The training lock stays with a
        running subprocess until :meth:`close` has seen it stop."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self.state, self.message = "error", message
        log.warning("enrolment in %s failed: %s", self.folder, message)

    def fail(self, message: str) -> None:
        """End this enrolment with an error the page shows (its capture raised, its model does not load)."""
        with self._lock:
            self._fail(message)

    def cancel(self) -> None:
        """Stop the capture or the training (asks `swapcam enroll` to stop) and return at once: safe on the event
        loop. :meth:`close` waits for the subprocess and removes the data."""
        with self._lock:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
            if self.state in ("capturing", "training"):
                self.state = "cancelled"

    def close(self) -> None:
        """Cancel, wait for `swapcam enroll` to stop (killed after :data:`STOP_TIMEOUT_S`; it saves and exports on
        SIGTERM), free the training lock, and delete the folder unless ``keep``. Blocks for as long as the subprocess
        takes: call it in a thread, never on the event loop. Idempotent; a second caller waits for the first."""
        with self._close_lock:
            if self._closed:
                return
            self.cancel()
            proc = self._proc
            if proc is not None:
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "enrolment in %s: swapcam enroll did not stop in %g s; killed", self.folder, STOP_TIMEOUT_S
                    )
                    proc.kill()
                    proc.wait()
            with self._lock:
                self._release()
            if not self.keep:
                shutil.rmtree(self.folder, ignore_errors=True)
            self._closed = True
