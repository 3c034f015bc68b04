"""The ``swapcam`` command. Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its subcommand runs, so ``swapcam live`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from realtime.errors import SwapcamError
from realtime.native import quiet_native_logs

# name -> (module, one-line help). Order is the order shown by `swapcam --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("realtime.demo", "the main job: live pipeline on the built-in synthetic clip with the shipped demo model"),
    "doctor": ("realtime.doctor", "check Python, packages, onnxruntime providers, mediapipe models, cameras, browser"),
    "align": (
        "realtime.align_cmd",
        "landmarks + Umeyama-aligned crops, JSON and an annotated preview for images/videos",
    ),
    "make-clip": ("realtime.samples", "write the built-in synthetic camera clip of a sample face as MP4 or y4m"),
    "extract": (
        "training.extract",
        "build a faceset (aligned crops + faces.json) from videos, folders, images or a camera",
    ),
    "train": ("training.train", "train the shared-encoder / two-decoder swap autoencoder on facesets A and B"),
    "export": ("models.export", "export a trained run to ONNX (swapcam contract or DeepFaceLive DFM)"),
    "enroll": (
        "training.enroll",
        "your own face in minutes: capture yourself, fine-tune the shipped model, export, go live",
    ),
    "build-demo-model": (
        "training.demo_model",
        "rebuild the shipped demo model (astronaut <-> Grace Hopper) from scratch",
    ),
    "train-upscaler": (
        "training.upscaler",
        "train the ESPCN x2 paste-back upscaler (--sharpen espcn) on the sample portraits, export ONNX",
    ),
    "bench-train": ("training.bench", "training speed per preset (samples/s) and GFLOPs per face, JSON output"),
    "live": ("realtime.live", "run the live swap: camera/file/synthetic source -> virtual camera, window, file"),
    "eval": (
        "realtime.eval.cli",
        "swap quality on a clip: expression, pose, identity, reconstruction, flicker, seams; JSON + sheet",
    ),
    "bench": ("realtime.bench", "live pipeline benchmark: per-stage p50/p95 ms, fps, end-to-end latency, drops"),
    "serve": ("realtime.webrtc.server", "WebRTC server + demo page: browser webcam in, swapped video back"),
    "bench-webrtc": ("realtime.webrtc.bench", "N in-process WebRTC peers: per-peer fps and round-trip latency"),
}


def _top_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<17} {text}" for name, (_, text) in COMMANDS.items())
    epilog += "\n\nRun `swapcam COMMAND --help` for the options of one command."
    parser = argparse.ArgumentParser(
        prog="swapcam",
        description="Real-time webcam face swap. Use only faces you have consent for.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def build_parser(name: str) -> tuple[argparse.ArgumentParser, ModuleType]:
    module_name, text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"swapcam {name}",
        description=(module.__doc__ or text).strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] == "--version":
        from realtime import __version__

        print(f"swapcam {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"swapcam: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        parser, module = build_parser(name)
        args = parser.parse_args(rest)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
        quiet_native_logs()
        return int(module.run(args) or 0)
    except SwapcamError as exc:
        print(f"swapcam {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"swapcam {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
