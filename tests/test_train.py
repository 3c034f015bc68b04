"""training.train with real facesets (mediapipe on synthetic clips) and real torch training on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _training_fixtures import build_facesets, faceset_faces, read_metrics, short_run  # noqa: E402

from models.autoencoder import build_model, get_preset  # noqa: E402
from models.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint  # noqa: E402
from realtime.align import template_points  # noqa: E402
from realtime.cli import main as cli_main  # noqa: E402
from realtime.compose import hull_mask  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402
from training.faceset import load_faceset, read_index  # noqa: E402
from training.losses import psnr  # noqa: E402
from training.step import LossConfig, build_train_state, identity_batch, make_identity, train_step  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def facesets(tmp_path_factory):
    return build_facesets(str(tmp_path_factory.getbasetemp() / "facesets"))


@pytest.fixture(scope="module")
def run20(tmp_path_factory, facesets):
    return short_run(str(tmp_path_factory.getbasetemp() / "run20"))


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _psnr_per_identity(model, faces_a: np.ndarray, faces_b: np.ndarray) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        xa, xb = torch.from_numpy(faces_a), torch.from_numpy(faces_b)
        return float(psnr(model(xa, "a")[0], xa)), float(psnr(model(xb, "b")[0], xb))


# ------------------------------------------------------------------------------------------------ learning
@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~1 min on an idle 2-core CPU; far longer when the cores are shared
def test_short_training_raises_psnr_and_swaps_identity(tmp_path, facesets):
    cfg = TrainConfig(
        a=str(facesets["A"]),
        b=str(facesets["B"]),
        out=str(tmp_path / "run"),
        preset="tiny",
        steps=500,
        batch=8,
        lr=5e-4,
        seed=0,
        preview_every=250,
        save_every=250,
        log_every=10,
    )
    faces_a, faces_b = faceset_faces(facesets["A"], 64), faceset_faces(facesets["B"], 64)
    torch.manual_seed(cfg.seed)  # train() initialises its weights exactly like this
    untrained = build_model("tiny")
    before = _psnr_per_identity(untrained, faces_a, faces_b)
    summary = train(cfg, progress=False)
    assert summary["step"] == 500
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    model = build_model("tiny")
    model.load_state_dict(state["model"])
    after = _psnr_per_identity(model, faces_a, faces_b)
    assert after[0] >= before[0] + 6.0, f"A: {before[0]:.2f} -> {after[0]:.2f} dB"
    assert after[1] >= before[1] + 6.0, f"B: {before[1]:.2f} -> {after[1]:.2f} dB"
    # each identity's mean latent code (for identity re-centring at export): near its own faces' codes, far from
    # the other identity's
    with torch.no_grad():
        codes = {k: model.encoder.encode(torch.from_numpy(f)).mean(0) for k, f in (("a", faces_a), ("b", faces_b))}
    stored = {k: torch.tensor(v) for k, v in state["latent_means"].items()}
    apart = float((codes["a"] - codes["b"]).norm())
    for own, other in (("a", "b"), ("b", "a")):
        assert stored[own].shape == (model.config.latent,)
        assert float((stored[own] - codes[own]).norm()) < 0.25 * apart < float((stored[own] - codes[other]).norm())
    # ... and its spread (the identity gate's unit): how far its own faces' codes lie from it, well under the gap
    # between the identities (what the gate tells apart)
    spreads = state["latent_spreads"]
    assert set(spreads) == {"a", "b"} and all(0 < spreads[k] < 0.5 * apart for k in "ab"), (spreads, apart)

    # Does A->B look like B? Metric: nearest real face. The crops are aligned to one template, so inside the face
    # hull a pixel distance compares appearance (skin, hair, glasses, the portrait's light), not pose; an output
    # whose nearest real crop is a B crop looks like B. A blurry mean face or a copy of the input would land on A.
    lms = np.concatenate([load_faceset(facesets[k], 64).landmarks for k in ("A", "B")])
    region = torch.from_numpy(np.mean([hull_mask(lm, 64) for lm in lms], axis=0) > 0.5)
    real = torch.from_numpy(np.concatenate([faces_a, faces_b]))[..., region].flatten(1)
    is_b = torch.tensor([False] * len(faces_a) + [True] * len(faces_b))
    with torch.no_grad():
        a2b = model(torch.from_numpy(faces_a), "b")[0][..., region].flatten(1)
        b2a = model(torch.from_numpy(faces_b), "a")[0][..., region].flatten(1)
    nearest_a2b = is_b[torch.cdist(a2b, real).argmin(dim=1)]
    nearest_b2a = is_b[torch.cdist(b2a, real).argmin(dim=1)]
    assert nearest_a2b.float().mean() >= 0.9, (
        f"only {nearest_a2b.float().mean():.0%} of A->B outputs are nearest to a B face"
    )
    assert (~nearest_b2a).float().mean() >= 0.9, (
        f"only {(~nearest_b2a).float().mean():.0%} of B->A outputs are nearest to an A face"
    )
    # and on average closer to B's faces than to A's
    d = torch.cdist(a2b, real)
    assert d[:, is_b].mean() < d[:, ~is_b].mean()

    # the artefacts of the run: metrics with per-identity PSNR, previews with the six rows
    metrics = read_metrics(tmp_path / "run")
    assert metrics[-1]["step"] == 500 and {"psnr_a", "psnr_b", "loss"} <= set(metrics[-1])
    grid = cv2.imread(str(tmp_path / "run" / "preview.png"))
    assert grid.shape[0] == 6 * 128 and (grid.shape[1] - 72) % 128 == 0
    assert (tmp_path / "run" / "previews" / "step_0000250.png").exists()


def test_preview_rows(run20, facesets):
    grid = cv2.imread(str(run20 / "preview.png"))
    assert grid is not None and grid.shape[0] == 6 * 128
    cell = 128
    rows = [grid[r * cell : (r + 1) * cell, 72:] for r in range(6)]
    # row 0 is the first preview face of A, row 3 of B: real crops, resized
    face_a = cv2.resize(load_faceset(facesets["A"], 64).images[0], (cell, cell), interpolation=cv2.INTER_NEAREST)
    assert np.abs(rows[0][:, :cell].astype(int) - face_a.astype(int)).mean() < 2.0
    assert np.abs(rows[0].astype(int) - rows[3].astype(int)).mean() > 10


# ------------------------------------------------------------------------------------------------ resume
def test_resume_reproduces_uninterrupted_losses(tmp_path, facesets):
    common = [
        "--a",
        str(facesets["A"]),
        "--b",
        str(facesets["B"]),
        "--batch",
        "3",
        "--lr",
        "5e-4",
        "--seed",
        "5",
        "--log-every",
        "1",
        "--preview-every",
        "0",
        "--save-every",
        "1000",
        "--no-progress",
        "--threads",
        "2",
    ]
    assert cli_main(["train", "--out", str(tmp_path / "full"), "--steps", "8"] + common) == 0
    assert cli_main(["train", "--out", str(tmp_path / "part"), "--steps", "4"] + common) == 0
    assert load_checkpoint(tmp_path / "part" / CHECKPOINT)["step"] == 4
    assert cli_main(["train", "--out", str(tmp_path / "part"), "--steps", "8", "--resume"] + common) == 0
    full, part = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [m["step"] for m in part] == list(range(1, 9)) == [m["step"] for m in full]
    for f, p in zip(full, part, strict=True):
        assert p["loss"] == pytest.approx(f["loss"], rel=1e-5, abs=1e-7), f"step {f['step']}"
    sf, sp = load_checkpoint(tmp_path / "full" / CHECKPOINT), load_checkpoint(tmp_path / "part" / CHECKPOINT)
    for key, value in sf["model"].items():
        assert torch.allclose(value, sp["model"][key], atol=1e-6), key
    assert sp["step"] == 8 and "optimizer" in sp and "rng" in sp and sp["train_config"]["seed"] == 5


def test_checkpoint_write_killed_midway_keeps_previous(tmp_path, run20):
    ckpt = tmp_path / CHECKPOINT
    shutil.copy(run20 / CHECKPOINT, ckpt)
    old_step = load_checkpoint(ckpt)["step"]
    # a real process writing a big checkpoint over it, killed with SIGKILL while the temp file is being written
    script = (
        "import sys, torch; from models.checkpoint import save_checkpoint, CHECKPOINT_FORMAT\n"
        "state = {'format': CHECKPOINT_FORMAT, 'step': 999, 'blob': torch.ones(120_000_000)}\n"
        f"print('writing', flush=True); save_checkpoint({str(ckpt)!r}, state); print('finished', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    tmp_file = None
    while time.monotonic() < deadline and proc.poll() is None:
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(f".{CHECKPOINT}.") and p.name.endswith(".tmp")]
        if temps and temps[0].stat().st_size > 0:
            tmp_file = temps[0]
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the writer finished before it could be killed midway"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert tmp_file is not None and tmp_file.exists(), "no partially written temp file: the kill was not midway"
    assert tmp_file.stat().st_size < 480_000_000  # partial
    state = load_checkpoint(ckpt)
    assert state["step"] == old_step
    # and a truncated checkpoint is reported, not unpickled half-way
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(SwapcamError, match="corrupt or truncated"):
        load_checkpoint(bad)


def test_save_checkpoint_is_atomic_replace(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"format": "swapcam-checkpoint-v1", "step": 1})
    save_checkpoint(path, {"format": "swapcam-checkpoint-v1", "step": 2})
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left behind


# ------------------------------------------------------------------------------------------------ the shared step
def _random_identity(name: str, n: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    landmarks = np.repeat(template_points(size).astype(np.float32)[None], n, axis=0)
    return make_identity(name, rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), landmarks)


def test_non_finite_loss_stops_before_the_update():
    """A loss that is NaN (here: a NaN in the batch) raises one clear error and leaves the weights untouched."""
    device = torch.device("cpu")
    state = build_train_state(get_preset("tiny"), device, lr=1e-3, seed=0, amp=False)
    a, b = _random_identity("a", 4, 64, 1), _random_identity("b", 4, 64, 2)
    batch_a, batch_b = identity_batch(None, a, 0, 0, 0, 2, device), identity_batch(None, b, 0, 0, 1, 2, device)
    train_step(state, batch_a, batch_b, LossConfig())
    assert state.step == 1
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    batch_a["input"][0, 0, 0, 0] = float("nan")
    with pytest.raises(SwapcamError, match=r"loss became nan at step 1; lower --lr \(now 0.001\)"):
        train_step(state, batch_a, batch_b, LossConfig())
    assert state.step == 1
    assert all(torch.equal(before[k], v) for k, v in state.model.state_dict().items())


def test_bench_train_runs_the_training_step(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        cli_main(
            [
                "bench-train",
                "--presets",
                "tiny",
                "--batch",
                "2",
                "--steps",
                "2",
                "--warmup",
                "1",
                "--threads",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())["results"][0]
    assert result["preset"] == "tiny" and result["steps"] == 2 and result["samples_per_s"] > 0
    assert "samples/s" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_before_exiting(tmp_path, facesets, signum):
    """Ctrl-C, or SIGTERM (`kill`: what stops a run started in the background, where the shell ignores SIGINT)."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "training.train",
        "--a",
        str(facesets["A"]),
        "--b",
        str(facesets["B"]),
        "--out",
        str(out),
        "--steps",
        "100000",
        "--batch",
        "2",
        "--log-every",
        "1",
        "--save-every",
        "100000",
        "--preview-every",
        "0",
        "--no-progress",
    ]
    # faulthandler: if the run does not stop, SIGABRT makes it print every thread's stack
    env = dict(_env(), PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started as a background job (`make test &`) ignores SIGINT, and an ignored signal stays ignored
        # across exec: the child would never see Ctrl-C. Give it the default disposition, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(read_metrics(out)) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"training did not stop within 120 s of {signum.name}; its threads:\n{err[-6000:]}")
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint saved" in err
    state = load_checkpoint(out / CHECKPOINT)
    assert 3 <= state["step"] < 100000
    assert state["step"] >= read_metrics(out)[-1]["step"]


# ------------------------------------------------------------------------------------------------ several processes
@pytest.mark.slow
def test_torchrun_ddp_gloo_two_processes(tmp_path, facesets):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "-m",
        "training.train",
        "--a",
        str(facesets["A"]),
        "--b",
        str(facesets["B"]),
        "--out",
        str(out),
        "--steps",
        "4",
        "--batch",
        "2",
        "--lr",
        "1e-2",
        "--log-every",
        "1",
        "--preview-every",
        "0",
        "--no-progress",
    ]
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    state = load_checkpoint(out / CHECKPOINT)
    assert state["step"] == 4 and state["world_size"] == 2
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4] and all(m["world_size"] == 2 for m in metrics)
    # Gradients really were averaged over the ranks: rank 0 alone (same seed, same batches) logs the same loss at
    # step 1 (before any update) but a different one at step 2 (its weights moved by its own gradient only).
    single = tmp_path / "single"
    assert (
        cli_main(
            [
                "train",
                "--a",
                str(facesets["A"]),
                "--b",
                str(facesets["B"]),
                "--out",
                str(single),
                "--steps",
                "2",
                "--batch",
                "2",
                "--lr",
                "1e-2",
                "--log-every",
                "1",
                "--preview-every",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    alone = read_metrics(single)
    assert alone[0]["loss"] == pytest.approx(metrics[0]["loss"], rel=1e-5)
    assert abs(alone[1]["loss"] - metrics[1]["loss"]) > 1e-3 * abs(metrics[1]["loss"]), (alone[1], metrics[1])


# ------------------------------------------------------------------------------------------------ bad input
def _one_line_error(capsys, argv: list[str], needle: str) -> None:
    assert cli_main(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("swapcam train: error:") and needle in err[0], err[0]


def test_bad_inputs_give_one_clear_line(tmp_path, facesets, capsys):
    a, b = str(facesets["A"]), str(facesets["B"])
    base = ["--steps", "2", "--batch", "2", "--no-progress"]
    _one_line_error(
        capsys,
        ["train", "--a", a, "--b", b, "--out", str(tmp_path / "r1"), "--preset", "huge"] + base,
        "unknown preset 'huge'",
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "faces.json").write_text(json.dumps({"version": 1, "size": 128, "coverage": 1.6, "faces": []}))
    _one_line_error(capsys, ["train", "--a", str(empty), "--b", b, "--out", str(tmp_path / "r2")] + base, "is empty")

    mixed = tmp_path / "mixed"
    shutil.copytree(facesets["A"], mixed)
    name = read_index(mixed)["faces"][2]["file"]
    cv2.imwrite(str(mixed / name), np.zeros((90, 90, 3), np.uint8))
    _one_line_error(capsys, ["train", "--a", str(mixed), "--b", b, "--out", str(tmp_path / "r3")] + base, "mixed sizes")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(facesets["B"], corrupt)
    name = read_index(corrupt)["faces"][1]["file"]
    (corrupt / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    _one_line_error(capsys, ["train", "--a", a, "--b", str(corrupt), "--out", str(tmp_path / "r4")] + base, name)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CHECKPOINT).write_bytes(b"PK\x03\x04 not really a checkpoint")
    _one_line_error(
        capsys, ["train", "--a", a, "--b", b, "--out", str(broken), "--resume"] + base, "corrupt or truncated"
    )
    _one_line_error(capsys, ["train", "--a", a, "--b", b, "--out", str(broken)] + base, "already exists")
    _one_line_error(
        capsys, ["train", "--a", a, "--b", b, "--out", str(tmp_path / "none"), "--resume"] + base, "does not exist"
    )


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "training.train", "--help"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "--resume" in res.stdout and "--preset" in res.stdout


# -- the recipe tools: schedules, prefetch workers, held-out PSNR, time budget --------------------------------------
def test_learning_rate_and_warp_schedules():
    from training.schedule import learning_rate, warp_strength

    lrs = [learning_rate(s, 100, 1e-3, warmup=10, schedule="cosine", final=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up
    assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4, rel=0.01)  # cosine down to 10 %
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert learning_rate(50, 100, 1e-3) == 1e-3  # constant without warm-up is the old behaviour
    with pytest.raises(ValueError):
        learning_rate(0, 10, 1e-3, schedule="step")
    warps = [warp_strength(s, 100, 1.0, off_at=0.8) for s in range(100)]
    assert warps[0] == warps[54] == 1.0 and warps[80] == warps[99] == 0.0  # fade over 25 % of the run before 80 %
    assert 0.0 < warps[70] < 1.0 and warps == sorted(warps, reverse=True)
    assert warp_strength(99, 100, 1.0) == 1.0  # off_at 1: always on


def test_worker_processes_build_the_same_batches_and_holdout_is_reported(tmp_path, facesets):
    common = ["--a", str(facesets["A"]), "--b", str(facesets["B"]), "--batch", "3", "--lr", "5e-4", "--seed", "2"]
    common += ["--log-every", "1", "--preview-every", "0", "--no-progress", "--threads", "1", "--steps", "3"]
    common += ["--holdout", "0.2", "--expressions", "0.5", "--warmup", "2", "--lr-schedule", "cosine"]
    assert cli_main(["train", "--out", str(tmp_path / "inline")] + common) == 0
    assert cli_main(["train", "--out", str(tmp_path / "workers"), "--workers", "2"] + common) == 0
    inline, workers = read_metrics(tmp_path / "inline"), read_metrics(tmp_path / "workers")
    assert [m["loss"] for m in inline] == pytest.approx([m["loss"] for m in workers], rel=1e-6)
    assert [m["lr"] for m in inline] == pytest.approx([5e-4 / 2, 5e-4, 5e-4])  # warm-up 2, then the cosine starts
    psnr = load_checkpoint(tmp_path / "inline" / CHECKPOINT)["psnr"]
    assert {"a", "b", "held_a", "held_b"} <= set(psnr)
    n_faces = len(read_index(facesets["A"])["faces"])
    config = json.loads((tmp_path / "inline" / "train_config.json").read_text())
    assert config["holdout"] == 0.2 and n_faces >= 5


def test_time_budget_stops_early_saved_and_resume_finishes(tmp_path, facesets):
    common = ["--a", str(facesets["A"]), "--b", str(facesets["B"]), "--batch", "2", "--log-every", "1"]
    common += ["--preview-every", "0", "--save-every", "1000", "--no-progress", "--threads", "1"]
    run = tmp_path / "budget"
    assert cli_main(["train", "--out", str(run), "--steps", "100000", "--max-minutes", "0.001"] + common) == 0
    step = load_checkpoint(run / CHECKPOINT)["step"]
    assert 1 <= step < 100000  # stopped by the clock, checkpoint saved
    assert cli_main(["train", "--out", str(run), "--steps", str(step + 2), "--resume"] + common) == 0
    assert load_checkpoint(run / CHECKPOINT)["step"] == step + 2


def test_close_lips_reaches_only_its_own_identitys_batches(facesets):
    """--close-lips-a changes A's training batches (input and target) and leaves B's exactly as they were;
    --close-lips-b the other way round."""
    from dataclasses import replace

    from training.train import load_data, step_arrays

    base = TrainConfig(a=str(facesets["A"]), b=str(facesets["B"]), out="unused", preset="tiny", batch=4)
    batches = {}
    for name, cfg in (
        ("off", base),
        ("a", replace(base, close_lips_a=1.0)),
        ("b", replace(base, close_lips_b=1.0)),
    ):
        batches[name] = step_arrays(load_data(cfg, 64), cfg, 0, 3)

    def same(x: dict, y: dict) -> bool:
        return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)

    (off_a, off_b), (a_a, a_b), (b_a, b_b) = batches["off"], batches["a"], batches["b"]
    assert same(a_b, off_b) and same(b_a, off_a)
    assert not np.array_equal(a_a["input"], off_a["input"]) and not np.array_equal(a_a["target"], off_a["target"])
    assert not np.array_equal(b_b["target"], off_b["target"])


# ------------------------------------------------------------------------------------------------ detail texture
def test_textures_start_at_the_faceset_mean_residual(facesets):
    from training.train import init_textures, load_data

    cfg = TrainConfig(a=str(facesets["A"]), b=str(facesets["B"]), out="unused", preset="tiny")
    data = load_data(cfg, 64)
    faces_a, faces_b = faceset_faces(facesets["A"], 64), faceset_faces(facesets["B"], 64)
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_model(replace(get_preset("tiny"), texture=True))
    before = _psnr_per_identity(model, faces_a, faces_b)
    init_textures(model, data, torch.device("cpu"))
    after = _psnr_per_identity(model, faces_a, faces_b)
    # an untrained decoder draws flat grey; from its texture on it draws each identity's mean face
    assert after[0] >= before[0] + 5.0 and after[1] >= before[1] + 5.0, (before, after)
    assert not torch.equal(model.decoder_a.texture, model.decoder_b.texture)
    learned = model.decoder_a.texture.detach().clone()
    init_textures(model, data, torch.device("cpu"))  # a texture already set (a resumed run) is left alone
    assert torch.equal(model.decoder_a.texture, learned)


def test_fine_tuning_a_model_without_texture_adds_one(tmp_path, facesets, run20):
    from dataclasses import replace

    from models.autoencoder import ModelConfig
    from training.train import load_init_weights

    saved = load_checkpoint(run20 / CHECKPOINT)
    old = dict(saved)  # the checkpoint as a model made before the texture would have written it
    old["model_config"] = replace(ModelConfig.from_dict(saved["model_config"]), texture=False).to_dict()
    old["model"] = {k: v for k, v in saved["model"].items() if not k.endswith(".texture")}
    save_checkpoint(tmp_path / "old.pt", old)
    common = ["--a", str(facesets["A"]), "--b", str(facesets["B"]), "--steps", "2", "--batch", "2"]
    common += ["--no-progress", "--threads", "1", "--augment-off", "0", "--init", str(tmp_path / "old.pt")]
    assert cli_main(["train", "--out", str(tmp_path / "tuned"), "--texture"] + common) == 0
    tuned = load_checkpoint(tmp_path / "tuned" / CHECKPOINT)
    assert tuned["model_config"]["texture"] is True
    assert tuned["model"]["decoder_b.texture"].abs().mean() > 0.01  # started from the faceset, not zero
    assert cli_main(["train", "--out", str(tmp_path / "plain")] + common) == 0  # without --texture: none
    plain = load_checkpoint(tmp_path / "plain" / CHECKPOINT)
    assert plain["model_config"]["texture"] is False and "decoder_b.texture" not in plain["model"]

    model = build_model("tiny")
    with pytest.raises(SwapcamError, match="missing encoder"):
        load_init_weights(model, {k: v for k, v in saved["model"].items() if not k.startswith("encoder.")})


def test_augment_off_out_of_range_is_one_line(tmp_path, facesets, capsys):
    argv = ["train", "--a", str(facesets["A"]), "--b", str(facesets["B"]), "--out", str(tmp_path / "r")]
    _one_line_error(capsys, argv + ["--augment-off", "1.5", "--steps", "2", "--no-progress"], "--augment-off 1.5")


def test_cross_mask_loss_trains_each_decoders_mask_on_the_other_identity():
    """--cross-mask: off, the step's loss is the two identities' own and nothing else; on, it adds decoder B's mask
    on A's faces vs A's mask target (and A's on B's), whose gradient reaches the decoders' trunk and mask head only:
    not the encoder, not the face head."""
    from training.step import cross_mask_loss

    device = torch.device("cpu")
    a, b = _random_identity("a", 4, 64, 1), _random_identity("b", 4, 64, 2)
    batch_a, batch_b = identity_batch(None, a, 0, 0, 0, 2, device), identity_batch(None, b, 0, 0, 1, 2, device)
    batch_a["mask"] = batch_a["mask"] * 0.5  # targets that differ from B's, so a mix-up shows
    off = train_step(build_train_state(get_preset("tiny"), device, 1e-3, 0, False), batch_a, batch_b, LossConfig())
    assert torch.equal(off.loss, off.loss_a + off.loss_b)

    losses = LossConfig(mask_loss="bce", cross_mask=0.7)
    state = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    with torch.no_grad():
        z_a, z_b = state.model.encoder(batch_a["input"]), state.model.encoder(batch_b["input"])
        expected = 0.7 * (
            torch.nn.functional.binary_cross_entropy(
                state.model.decoder_b(z_a)[1].clamp(1e-6, 1 - 1e-6), batch_a["mask"]
            )
            + torch.nn.functional.binary_cross_entropy(
                state.model.decoder_a(z_b)[1].clamp(1e-6, 1 - 1e-6), batch_b["mask"]
            )
        )
    on = train_step(state, batch_a, batch_b, losses)
    assert float(on.loss - on.loss_a - on.loss_b) == pytest.approx(float(expected), rel=1e-4)
    assert float(expected) > 0.1

    state = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    _, _, (mask_ba, mask_ab) = state.pair(batch_a["input"], batch_b["input"], cross=True)
    cross_mask_loss(mask_ba, mask_ab, batch_a["mask"], batch_b["mask"], losses).backward()
    model = state.model

    def moved(module: torch.nn.Module) -> bool:
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert not moved(model.encoder)
    for decoder in (model.decoder_a, model.decoder_b):
        assert moved(decoder.to_mask) and moved(decoder.blocks)
        assert not moved(decoder.to_face)


def test_occluder_face_skip_reaches_the_step():
    """--occluder-face skip: the step's face losses leave out what the batch's "visible" hides (learn: they do not;
    no "visible" key: the two are the same step)."""
    device = torch.device("cpu")
    a, b = _random_identity("a", 4, 64, 1), _random_identity("b", 4, 64, 2)
    batch_a, batch_b = identity_batch(None, a, 0, 0, 0, 2, device), identity_batch(None, b, 0, 0, 1, 2, device)

    def loss(kind: str, batch: dict) -> float:
        state = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
        return float(train_step(state, batch, batch_b, LossConfig(occluder_face=kind)).loss_a)

    assert loss("skip", batch_a) == loss("learn", batch_a)  # no occluders in the batch: the same step
    hidden = dict(batch_a, visible=torch.ones_like(batch_a["mask"]))
    hidden["visible"][:, :, 10:40, 12:50] = 0.0
    scrambled = dict(hidden, target=hidden["target"].clone())
    scrambled["target"][:, :, 10:40, 12:50] = torch.rand_like(scrambled["target"][:, :, 10:40, 12:50])
    assert loss("skip", scrambled) == pytest.approx(loss("skip", hidden), rel=1e-6)
    assert loss("learn", scrambled) != pytest.approx(loss("learn", hidden), rel=1e-3)


def test_freezing_the_encoder_trains_the_decoders_only_and_keeps_it_bit_identical():
    """--freeze encoder: the encoder's weights get no gradient and no Adam state and stay bit-identical over several
    steps (a fine-tune that keeps the shared code), while both decoders learn; the optimizer's state round-trips
    through a resume; freezing everything is one clear error."""
    from training.train import FREEZABLE, set_trainable

    device = torch.device("cpu")
    a, b = _random_identity("a", 4, 64, 1), _random_identity("b", 4, 64, 2)

    def step(state, index: int) -> None:
        batch_a, batch_b = (
            identity_batch(None, a, 0, index, 0, 2, device),
            identity_batch(None, b, 0, index, 1, 2, device),
        )
        train_step(state, batch_a, batch_b, LossConfig(mask_loss="bce"))

    state = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    set_trainable(state, ("encoder",))
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    for index in range(3):
        step(state, index)
    after = state.model.state_dict()
    encoder_keys = [k for k in before if k.startswith("encoder.")]
    assert encoder_keys and all(torch.equal(before[k], after[k]) for k in encoder_keys)
    for part in ("decoder_a.", "decoder_b."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    encoder_params = {id(p) for p in state.model.encoder.parameters()}
    in_optimizer = {id(p) for group in state.optimizer.param_groups for p in group["params"]}
    assert not encoder_params & in_optimizer
    assert in_optimizer == {id(p) for p in state.model.parameters()} - encoder_params
    assert not any(id(p) in encoder_params for p in state.optimizer.state)
    assert all(p.grad is None for p in state.model.encoder.parameters())

    # the same run unfrozen moves the encoder (so the check above can fail)
    free = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    step(free, 0)
    assert any(not torch.equal(before[k], free.model.state_dict()[k]) for k in encoder_keys)

    # a resume builds the same groups and takes the saved Adam state
    resumed = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    set_trainable(resumed, ["encoder"])
    resumed.model.load_state_dict(state.model.state_dict())
    resumed.optimizer.load_state_dict(state.optimizer.state_dict())
    step(resumed, 3)
    assert all(torch.equal(before[k], resumed.model.state_dict()[k]) for k in encoder_keys)

    # --decoder-b-lr as before: 0 freezes decoder B, a fraction gives it its own group
    half = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    set_trainable(half, (), decoder_b_lr=0.5)
    assert [g["lr_scale"] for g in half.optimizer.param_groups] == [1.0, 0.5]
    assert {id(p) for p in half.optimizer.param_groups[1]["params"]} == {
        id(p) for p in half.model.decoder_b.parameters()
    }
    still = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    set_trainable(still, ("encoder",), decoder_b_lr=0.0)
    assert {id(p) for g in still.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in still.model.decoder_a.parameters()
    }

    with pytest.raises(SwapcamError, match="nothing left to train"):
        set_trainable(build_train_state(get_preset("tiny"), device, 1e-3, 0, False), FREEZABLE)


def test_freezing_the_faces_trains_the_mask_heads_alone():
    """--freeze faces: after a few steps every weight that draws the face (encoder, trunks, face heads) is
    bit-identical, so the decoders' faces are too, and both mask heads (only they are in the optimizer) moved."""
    from training.train import set_trainable

    device = torch.device("cpu")
    a, b = _random_identity("a", 4, 64, 1), _random_identity("b", 4, 64, 2)
    state = build_train_state(get_preset("tiny"), device, 1e-3, 0, False)
    set_trainable(state, ("faces",))
    probe = identity_batch(None, a, 0, 9, 0, 2, device)["input"]
    with torch.no_grad():
        faces_before = [d(state.model.encoder(probe))[0] for d in (state.model.decoder_a, state.model.decoder_b)]
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    for index in range(3):
        batch_a = identity_batch(None, a, 0, index, 0, 2, device)
        batch_b = identity_batch(None, b, 0, index, 1, 2, device)
        train_step(state, batch_a, batch_b, LossConfig(mask_loss="bce"))
    after = state.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(".to_mask." in k for k in moved)
    assert {k.split(".")[0] for k in moved} == {"decoder_a", "decoder_b"}
    masks = {id(p) for d in (state.model.decoder_a, state.model.decoder_b) for p in d.to_mask.parameters()}
    assert {id(p) for g in state.optimizer.param_groups for p in g["params"]} == masks
    with torch.no_grad():
        faces_after = [d(state.model.encoder(probe))[0] for d in (state.model.decoder_a, state.model.decoder_b)]
    assert all(torch.equal(x, y) for x, y in zip(faces_before, faces_after, strict=True))


def test_freeze_switch_in_train_and_demo_build(tmp_path, capsys):
    """--freeze reaches the run's config (train, build-demo-model); a part that is not a part of the model is an
    argparse error, and a config that names one (a hand-edited checkpoint) one clear line."""
    import argparse

    from training import demo_model
    from training import train as train_module

    parser = argparse.ArgumentParser()
    train_module.add_arguments(parser)
    args = parser.parse_args(["--a", "A", "--b", "B", "--out", "o", "--freeze", "encoder"])
    assert train_module.config_from_args(args).freeze == ("encoder",)
    assert train_module.config_from_args(parser.parse_args(["--a", "A", "--b", "B", "--out", "o"])).freeze == ()
    with pytest.raises(SystemExit):
        parser.parse_args(["--a", "A", "--b", "B", "--out", "o", "--freeze", "decoder"])
    assert "invalid choice" in capsys.readouterr().err

    demo = argparse.ArgumentParser()
    demo_model.add_arguments(demo)
    recipe_args = demo.parse_args(["--freeze", "encoder", "--freeze", "decoder_a"])
    assert recipe_args.freeze == ["encoder", "decoder_a"]
    recipe = demo_model.Recipe(freeze=tuple(recipe_args.freeze))
    assert demo_model.train_config(tmp_path, recipe).freeze == ("encoder", "decoder_a")

    with pytest.raises(SwapcamError, match="--freeze inter"):
        train_module.resolve_config(TrainConfig(a="A", b="B", out=str(tmp_path / "r"), freeze=("inter",)), None)
