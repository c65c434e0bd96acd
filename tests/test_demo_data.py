"""Tests for stylegan_jax.train.demo_data (procedural portrait folder)."""
import json

import numpy as np
import pytest
from PIL import Image

from stylegan_jax.train.demo_data import MANIFEST, draw_face, ensure_demo_dataset


def _load(d, n):
    return np.stack([np.asarray(Image.open(d / f'{i:05d}.png')) for i in range(n)])


def test_generates_deterministic_png_folder_once(tmp_path):
    d = ensure_demo_dataset(tmp_path / 'a', num_images=12, resolution=16, seed=0)
    files = sorted(p.name for p in d.glob('*.png'))
    assert files == [f'{i:05d}.png' for i in range(12)]
    imgs = _load(d, 12)
    assert imgs.shape == (12, 16, 16, 3) and imgs.dtype == np.uint8
    assert json.loads((d / MANIFEST).read_text())['num_images'] == 12
    # Idempotent: a second call writes nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in d.iterdir()}
    assert ensure_demo_dataset(d, num_images=12, resolution=16, seed=0) == d
    assert {p: p.stat().st_mtime_ns for p in d.iterdir()} == mtimes
    # Same seed -> identical pixels elsewhere; a longer set keeps the first images.
    again = _load(ensure_demo_dataset(tmp_path / 'b', num_images=16, resolution=16, seed=0), 12)
    assert np.array_equal(again, imgs)
    other = _load(ensure_demo_dataset(tmp_path / 'c', num_images=12, resolution=16, seed=1), 12)
    assert not np.array_equal(other, imgs)
    # Changed parameters regenerate in place (our own files only).
    ensure_demo_dataset(d, num_images=4, resolution=8, seed=0)
    assert sorted(p.name for p in d.glob('*.png')) == [f'{i:05d}.png' for i in range(4)]
    assert _load(d, 4).shape == (4, 8, 8, 3)


def test_images_are_varied_face_like_portraits():
    res = 32
    imgs = np.stack([draw_face(np.random.default_rng([0, i, res]), res) for i in range(32)])
    f = imgs.astype(np.float64)
    # Varied: per-image mean colours differ a lot across the set.
    assert f.mean(axis=(1, 2)).std(axis=0).min() > 10
    # Portrait-like: roughly left-right symmetric (a mirrored face is closer to itself than to
    # another face), with the face, not the background, in the centre.
    self_mirror = np.abs(f - f[:, :, ::-1]).mean()
    others = np.abs(f - np.roll(f, 1, axis=0)).mean()
    assert self_mirror < 0.5 * others
    centre, border = f[:, 10:22, 10:22].std(axis=(1, 2)).mean(), f[:, :4, :4].std(axis=(1, 2)).mean()
    assert centre > 2 * border  # eyes/mouth detail in the middle, smooth gradient in the corner
    # Anti-aliased edges: more distinct values than the flat colours drawn.
    assert len(np.unique(imgs[0].reshape(-1, 3), axis=0)) > 40


def test_refuses_foreign_folder_and_bad_arguments(tmp_path):
    (tmp_path / 'mine.jpg').write_bytes(b'user data')
    with pytest.raises(ValueError, match='not a demo dataset'):
        ensure_demo_dataset(tmp_path, num_images=2, resolution=8)
    assert (tmp_path / 'mine.jpg').read_bytes() == b'user data'
    with pytest.raises(ValueError, match='power of two'):
        ensure_demo_dataset(tmp_path / 'x', resolution=24)
    with pytest.raises(ValueError, match='num_images'):
        ensure_demo_dataset(tmp_path / 'x', num_images=0)
