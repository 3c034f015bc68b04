"""realtime.atomic.atomic_write_image: the suffix picks the format, JPEG stays under 300 KB, writes are atomic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import realtime.atomic as atomic
from realtime.atomic import JPEG_MAX_BYTES, atomic_write_image, atomic_write_png, encode_jpeg
from realtime.errors import SwapcamError


def _picture(h: int, w: int, seed: int = 0, noise: float = 4.0) -> np.ndarray:
    """Smooth gradients (what JPEG keeps well) plus Gaussian noise of ``noise`` grey levels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.dstack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255])
    grain = np.random.default_rng(seed).normal(0, noise, (h, w, 3))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def _noisy(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Uniform noise: the worst case for JPEG (about 3 bytes a pixel at high quality)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_round_trip_is_exact(tmp_path):
    image = _noisy(37, 53)
    out = atomic_write_image(tmp_path / "a.png", image)
    assert out == tmp_path / "a.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), image)


def test_atomic_write_png_still_writes_png(tmp_path):
    image = _noisy(20, 30)
    out = atomic_write_png(tmp_path / "crop.png", image)
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), image)


@pytest.mark.parametrize("name", ["sheet.jpg", "sheet.jpeg", "SHEET.JPG"])
def test_jpeg_round_trip_is_close_and_small(tmp_path, name):
    image = _picture(480, 640)
    out = atomic_write_image(tmp_path / name, image)
    data = out.read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # JPEG, whatever the case of the suffix
    assert len(data) <= JPEG_MAX_BYTES
    back = cv2.imread(str(out))
    assert back.shape == image.shape
    assert np.abs(back.astype(np.int16) - image).mean() < 4


def _coarse(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (40, 30), interpolation=cv2.INTER_AREA).astype(np.int16)


def test_large_noisy_jpeg_is_close_and_under_300_kb(tmp_path):
    image = _picture(1500, 2000, noise=20)  # too grainy for 300 KB even at quality 60: shrunk by 0.8 a step
    out = atomic_write_image(tmp_path / "big.jpg", image)
    assert out.stat().st_size <= 300 * 1024
    back = cv2.imread(str(out))
    assert back.shape[0] < 1500 and back.shape[2] == 3
    assert abs(back.shape[1] / back.shape[0] - 2000 / 1500) < 0.01  # aspect ratio kept
    small = cv2.resize(image, (back.shape[1], back.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(np.int16) - small).mean() < 14  # the grain, at quality 60
    assert np.abs(_coarse(back) - _coarse(image)).mean() < 2  # the picture itself


def test_pure_noise_jpeg_is_under_300_kb(tmp_path):
    out = atomic_write_image(tmp_path / "noise.jpg", _noisy(1500, 2000))  # ~9 MB of incompressible pixels
    assert out.stat().st_size <= 300 * 1024
    assert cv2.imread(str(out)) is not None


def test_large_smooth_jpeg_keeps_its_size(tmp_path):
    image = _picture(1500, 2000)
    back = cv2.imread(str(atomic_write_image(tmp_path / "big.jpg", image)))
    assert back.shape == image.shape  # quality alone was enough: no downscale
    assert (tmp_path / "big.jpg").stat().st_size <= 300 * 1024


def test_encode_jpeg_steps_quality_down_before_shrinking():
    image = _picture(480, 640)
    at_start = len(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])[1])
    data = encode_jpeg(image, max_bytes=at_start - 1)  # just too big at 88: a lower quality, same size
    assert len(data) < at_start
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == image.shape


def test_grey_image(tmp_path):
    grey = _picture(64, 80)[:, :, 0].copy()
    for name in ("g.png", "g.jpg"):
        back = cv2.imread(str(atomic_write_image(tmp_path / name, grey)), cv2.IMREAD_UNCHANGED)
        assert back.shape == grey.shape


@pytest.mark.parametrize("name", ["sheet.gif", "sheet.webp", "sheet", "sheet.png.tmp"])
def test_bad_suffix_raises_and_writes_nothing(tmp_path, name):
    with pytest.raises(SwapcamError) as err:
        atomic_write_image(tmp_path / name, _noisy(8, 8))
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / name) in message
    assert ".png" in message and ".jpg" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["old.png", "old.jpg"])
def test_failed_encode_leaves_existing_file_untouched(tmp_path, name):
    path = tmp_path / name
    atomic_write_image(path, _picture(40, 60))
    before = path.read_bytes()
    with pytest.raises(SwapcamError) as err:
        atomic_write_image(path, np.random.default_rng(1).random((40, 60, 3)))  # float64: OpenCV would cast it
    assert "float64" in str(err.value)
    with pytest.raises(SwapcamError):
        atomic_write_image(path, np.zeros((40, 60, 3), dtype=bool))  # cv2.imencode itself refuses bool
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left behind


def test_failed_rename_leaves_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "sheet.jpg"
    atomic_write_image(path, _picture(40, 60, seed=1))
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError):
        atomic_write_image(path, _picture(40, 60, seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.jpg"]


def test_overwrites_and_creates_folder(tmp_path):
    path = tmp_path / "new" / "dir" / "sheet.jpg"
    atomic_write_image(path, _picture(40, 60, seed=1))
    first = path.read_bytes()
    atomic_write_image(path, _picture(40, 60, seed=2))
    assert path.read_bytes() != first
    assert oct(path.stat().st_mode & 0o777) == oct(atomic.FILE_MODE)
