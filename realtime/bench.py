"""Benchmark the live pipeline (the same threads and hand-offs as `swapcam live`) on the built-in synthetic clip or
a given source: per-stage p50/p95 ms, fps and frames dropped; prints a summary, --json writes every number.

--pace realtime (default) feeds frames at 30 fps like a camera: fps shows whether the pipeline keeps up, and the
end-to-end latency (capture timestamp -> sink done) and drops are what a user sees. --pace fast feeds frames as fast
as the pipeline takes them: fps is the ceiling (throughput) and the stage times are the cost; its capture -> sink
delay is queueing in full hand-offs, not a live latency, so it is reported as queue_latency_ms and said so.

--minutes M is a soak: the clip looped and paced like a camera for M minutes, one line every --every seconds (RSS,
threads, fps, latency p50/p95, drops) and a verdict at the end: RSS, latency p95 and threads of the last full minute
against the second (the first holds start-up), flat or grows (more than 10 %). A leak or a queue that builds up over
a long call shows there, not in a 10-second run. The per-minute records and the verdict go into --json.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path

from realtime.atomic import atomic_write_json
from realtime.builder import SUMMARY_WARMUP_FRAMES as WARMUP_FRAMES
from realtime.builder import add_model_arguments, open_swapper, run_live
from realtime.errors import SwapcamError
from realtime.live import add_pipeline_arguments, add_source_arguments, open_source_from_args, options_from_args
from realtime.runner import format_summary
from realtime.sources import PACES

log = logging.getLogger("swapcam.bench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_source_arguments(parser, default_source="synthetic")
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--frames",
        type=int,
        default=300,
        help=f"frames to run (the first {WARMUP_FRAMES} are warm-up, left out of the percentiles)",
    )
    length.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="soak instead of --frames: run this long paced like a camera (the synthetic clip loops; a video file "
        "needs --loop), print RSS, threads, fps, latency p50/p95 and drops every --every seconds, then a verdict: "
        "RSS, latency p95 and threads of the last full window against the second, flat or grows",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=60.0,
        help="with --minutes: seconds per soak record (one printed line and one JSON record each)",
    )
    parser.add_argument(
        "--pace",
        default="realtime",
        choices=PACES,
        help="realtime = feed at the source's fps like a camera (end-to-end latency, drops); "
        "fast = as fast as possible (throughput and stage cost; its delay is queueing, not a latency)",
    )
    parser.add_argument(
        "--sink", default="null", help="where frames go while measuring: null, file:PATH.mp4, vcam, window"
    )
    parser.add_argument("--json", default=None, help="write the full results to this JSON file")
    add_pipeline_arguments(parser)


def headroom_fps(summary: dict) -> float | None:
    """fps the slowest thread could sustain from its p50 busy time (landmarks thread, inference thread, sink)."""
    st = summary["stages_ms"]

    def p50(*names: str) -> float:
        return sum((st.get(n) or {}).get("p50") or 0.0 for n in names)

    inference = p50("align", "swap", "colour", "sharpen", "compose", "mouth", "overlay")
    busiest = max(p50("landmarks", "smooth"), inference, p50("sink"))
    return round(1000.0 / busiest, 1) if busiest > 0 else None


# ---------------------------------------------------------------------------------------------------------- soak
GROWTH_LIMIT_PCT = 10.0  # the soak's bar: the last full minute within 10 % of the second


def process_usage() -> dict:
    """This process's resident memory (MB) and thread counts (the OS's, which includes onnxruntime's and mediapipe's
    native threads, and Python's): psutil when installed, else /proc/self/status; rss_mb None where neither is."""
    usage: dict = {"rss_mb": None, "threads": None, "python_threads": threading.active_count()}
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        process = psutil.Process()
        usage.update(rss_mb=round(process.memory_info().rss / 2**20, 1), threads=process.num_threads())
        return usage
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key == "VmRSS":  # "  123456 kB"
                    usage["rss_mb"] = round(int(value.split()[0]) / 1024, 1)
                elif key == "Threads":
                    usage["threads"] = int(value)
    except OSError:
        pass
    return usage


def window_name(record: dict, every: float, pad: bool = True) -> str:
    """ "minute 3" when the records are a minute each, else "window 3 (at 15 s)"; ``pad`` aligns the numbers."""
    number = f"{record['window']:>2}" if pad else str(record["window"])
    if every == 60.0:
        return f"minute {number}"
    return f"window {number}" + (f" (at {record['t_end_s']:g} s)" if pad else "")


def _change_pct(last: float | None, base: float | None) -> float | None:
    if last is None or base is None or base <= 0:
        return None
    return round(100.0 * (last - base) / base, 1)


def soak_verdict(windows: list[dict], every: float, p95: Callable[[dict], float | None], what: str) -> dict:
    """RSS, ``what`` p95 (``p95(record)``) and threads of the last full window against the second (the first holds
    start-up; with only two full windows, against the first): each flat, or grows by more than GROWTH_LIMIT_PCT
    (threads too: pools of the codecs and the event loop come and go by a few, a leak adds one per call or frame).
    ``text`` is the line to print."""
    full = [w for w in windows if w["seconds"] >= 0.9 * every]
    if len(full) < 2:
        return {"flat": None, "text": f"verdict: none ({len(full)} full window(s) of {every:g} s; two are needed)"}
    base, last = full[1] if len(full) >= 3 else full[0], full[-1]
    rss_pct = _change_pct(last.get("rss_mb"), base.get("rss_mb"))
    p95_pct = _change_pct(p95(last), p95(base))
    threads_pct = _change_pct(last.get("threads"), base.get("threads"))
    threads_change = (last["threads"] - base["threads"]) if threads_pct is not None else None

    def judge(change: float | None, limit: float) -> str:
        return "unknown" if change is None else ("grows" if change > limit else "flat")

    verdict = {
        "baseline_window": base["window"],
        "last_window": last["window"],
        "rss_change_pct": rss_pct,
        "rss": judge(rss_pct, GROWTH_LIMIT_PCT),
        "p95_change_pct": p95_pct,
        "p95": judge(p95_pct, GROWTH_LIMIT_PCT),
        "threads_change": threads_change,
        "threads": judge(threads_pct, GROWTH_LIMIT_PCT),
        "fps": [base["fps"], last["fps"]],
    }
    verdict["flat"] = all(verdict[k] == "flat" for k in ("rss", "p95", "threads"))

    def pct(value: float | None) -> str:
        return "?" if value is None else f"{value:+.1f} %"

    verdict["text"] = (
        f"verdict, {window_name(last, every, pad=False)} vs {window_name(base, every, pad=False)}: "
        f"RSS {pct(rss_pct)}: {verdict['rss']}; {what} p95 {pct(p95_pct)}: {verdict['p95']}; threads "
        f"{'?' if threads_change is None else f'{threads_change:+d}'}: {verdict['threads']}; "
        f"fps {base['fps']:.1f} -> {last['fps']:.1f}"
    )
    return verdict


def _soak_line(record: dict, every: float) -> str:
    latency = record.get("latency_ms") or {}
    rss = "?" if record.get("rss_mb") is None else f"{record['rss_mb']:.1f}"
    return (
        f"{window_name(record, every)}: RSS {rss} MB, {record.get('threads')} threads, {record['fps']:5.1f} fps, "
        f"latency p50 {_ms(latency.get('p50'))} / p95 {_ms(latency.get('p95'))} ms, {record['dropped']} dropped"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def check_soak_arguments(minutes: float, every: float) -> None:
    """One-line errors for a soak's length and window."""
    if not minutes > 0:
        raise SwapcamError(f"--minutes {minutes}: expected a length > 0")
    if not every > 0:
        raise SwapcamError(f"--every {every}: expected seconds > 0")
    if every > minutes * 60:
        raise SwapcamError(
            f"--every {every:g} s is longer than the soak (--minutes {minutes:g}): no record would close"
        )


def run(args: argparse.Namespace) -> int:
    from realtime.sinks import check_sink_spec, open_sink

    check_sink_spec(args.sink)
    soak = args.minutes is not None
    if soak:
        check_soak_arguments(args.minutes, args.every)
        if args.pace != "realtime":
            raise SwapcamError("--minutes soaks paced like a camera: leave out --pace fast")
    elif args.frames < WARMUP_FRAMES + 10:
        raise SwapcamError(f"--frames {args.frames}: expected at least {WARMUP_FRAMES + 10}")
    options = options_from_args(args)
    swapper = open_swapper(args.model, args.providers, args.threads)
    log.info("model %s", swapper.describe())
    source = open_source_from_args(args, args.pace, n_frames=None if soak else args.frames)
    windows_wanted = math.ceil(args.minutes * 60 / args.every - 1e-9) if soak else 0
    if soak:
        print(
            f"soak: {windows_wanted} x {args.every:g} s of {source.describe()}, one line each, then a verdict",
            flush=True,
        )

    def on_start(runner) -> None:
        def on_window(record: dict) -> None:  # the sink's thread, once a window: cheap (/proc read, one line)
            record.update(process_usage())
            print(_soak_line(record, args.every), flush=True)
            if record["window"] >= windows_wanted:
                runner.stop()  # the soak ends with its last window, measured while every thread still runs

        if soak:
            runner.stats.roll_windows(args.every, on_window)

    try:
        sink = open_sink(args.sink, source.width, source.height, source.fps)
        try:
            summary, interrupted = run_live(
                swapper, source, sink, options, max_frames=None if soak else args.frames, on_start=on_start
            )
        finally:
            sink.close()
    finally:
        source.close()
    summary["headroom_fps"] = headroom_fps(summary)
    if soak:
        verdict = soak_verdict(
            summary["windows"], args.every, lambda w: (w.get("latency_ms") or {}).get("p95"), "latency"
        )
        summary["soak"] = {"minutes": args.minutes, "every_s": args.every, "verdict": verdict}
    result = {
        "benchmark": "swapcam live pipeline",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source.describe(),
        "resolution": [source.width, source.height],
        "pace": args.pace,
        "sink": args.sink,
        "model": {
            "path": str(swapper.path),
            "size": swapper.info.size,
            "preset": swapper.info.preset,
            "coverage": swapper.info.coverage,
            "format": swapper.info.format,
        },
        "provider": swapper.provider,
        "threads": args.threads,
        "options": dataclasses.asdict(options),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "warmup_frames": WARMUP_FRAMES,
        "interrupted": interrupted,
        **summary,
    }
    print(
        f"swapcam bench: {result['source']}, model {Path(swapper.path).name} ({swapper.info.size}px), "
        f"{swapper.provider}, pace {args.pace}"
    )
    print(format_summary(summary))
    print(f"headroom: slowest thread p50 allows {summary['headroom_fps']} fps")
    if soak:
        print(summary["soak"]["verdict"]["text"])
    if args.json:
        out = atomic_write_json(args.json, result, indent=2)
        print(f"wrote {out}")
    return 0
