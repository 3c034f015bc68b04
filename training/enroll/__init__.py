"""Your own face in minutes: capture yourself, fine-tune the shipped model on your face, export it, go live.

You are the camera side of the swap (identity A: the shared encoder and decoder A learn your face); the target is
the face you are turned into (identity B). Three steps, each resumable (run the same command again to continue):

1. capture (DIR/faceset, the `swapcam extract` faceset format): faces from the camera or a video, rejected when
   blurry, too dark, over-exposed, cut by the frame edge or too small (each reason counted and shown). A coverage
   meter over head poses (yaw x pitch, 3 x 3) and expressions (neutral, mouth open, smile, eyes closed) says what
   is still missing; from a camera it prompts you ("turn your head a little to your left") in a window, or in the
   log without a display, until the meter is full or --capture-seconds pass (q / Esc ends it early).
2. fine-tune (DIR/run): from the shipped demo model's training checkpoint (or --target RUN's; --scratch: random
   weights), A = your faceset, B = the target's. The encoder and decoder A learn your face; decoder B is frozen when
   it already draws the target (demo, RUN; B's loss still keeps the shared encoder's code readable by it), and
   trains at full rate for a FACESET target it has never seen. Held-out PSNR on your faces never trained on is
   printed as it goes; training stops at --minutes, when that PSNR stops improving (--patience), or on Ctrl-C
   (what was learned is kept and exported).
3. export: DIR/swap-YYYYMMDD-HHMMSS.onnx (your face -> target, the swapcam ONNX contract, parity-checked, written
   atomically), then the command that goes live with it.

Targets: ``demo`` (Grace Hopper, the shipped demo model's B; its faceset is rebuilt offline once and cached in
--cache), a faceset folder (faces.json), or a training run folder (checkpoint.pt; its faceset B must exist).

The package, one module per part: ``capturing`` (step 1, the camera window and prompts included), ``target`` (who
you become), ``tuning`` (step 2: the fine-tune policy and the run), ``export`` (step 3), ``status`` (``--status``
for `swapcam serve`'s page) and ``cli`` (the arguments and the command). The names other code uses are here too.
"""

from training.enroll.capturing import (
    MIN_FACES,
    CaptureResult,
    capture,
    capture_report,
    check_source,
    is_camera,
    parse_frames,
)
from training.enroll.cli import FACESET_DIR, RUN_DIR, SUMMARY_JSON, add_arguments, enroll, run
from training.enroll.export import EXPORT_PREFIX, export_enrolled, export_name, live_command
from training.enroll.status import StatusFile
from training.enroll.target import Target, default_cache, demo_checkpoint, demo_target_faceset, resolve_target
from training.enroll.tuning import (
    AUGMENT_OFF,
    DECODER_B_SAME_TARGET,
    FINE_TUNE_LR,
    HELD_B_FACES,
    HOLDOUT,
    PLATEAU_FROM,
    SCRATCH_LR,
    HeldOut,
    TuneOptions,
    evenly,
    fine_tune,
    held_out_callback,
    held_out_text,
    seconds_per_step,
    train_config_for,
)

__all__ = [
    "AUGMENT_OFF",
    "DECODER_B_SAME_TARGET",
    "EXPORT_PREFIX",
    "FACESET_DIR",
    "FINE_TUNE_LR",
    "HELD_B_FACES",
    "HOLDOUT",
    "MIN_FACES",
    "PLATEAU_FROM",
    "RUN_DIR",
    "SCRATCH_LR",
    "SUMMARY_JSON",
    "CaptureResult",
    "HeldOut",
    "StatusFile",
    "Target",
    "TuneOptions",
    "add_arguments",
    "capture",
    "capture_report",
    "check_source",
    "default_cache",
    "demo_checkpoint",
    "demo_target_faceset",
    "enroll",
    "evenly",
    "export_enrolled",
    "export_name",
    "fine_tune",
    "held_out_callback",
    "held_out_text",
    "is_camera",
    "live_command",
    "parse_frames",
    "resolve_target",
    "run",
    "seconds_per_step",
    "train_config_for",
]
