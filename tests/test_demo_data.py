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


# ----------------------------------------------------------------------- source / target domains

def test_portraits_are_unchanged_since_the_demo_model_was_trained_on_them():
    """The shipped demo model (configs/demo_pretrain.py) was trained on these exact pixels: the
    SHA-256 of images 0-63 at 16 and 32 px, recorded before the renderer gained the elves."""
    import hashlib
    h = hashlib.sha256()
    for i in range(64):
        for r in (16, 32):
            h.update(draw_face(np.random.default_rng([0, i, r]), r).tobytes())
    assert h.hexdigest() == 'f423661ed565b58249ff843762f3a347a3b7124a3619e97e30d1c885f8973a6e'


def test_elves_are_one_pointed_eared_character_in_two_kinds(tmp_path):
    from stylegan_jax.train import demo_data
    d = ensure_demo_dataset(tmp_path / 'elves', num_images=58, resolution=32, demo_set='elves')
    kinds = demo_data.read_kinds(d)
    assert list(kinds) == [f'{i:05d}.png' for i in range(58)]
    assert [kinds[f'{i:05d}.png'] for i in range(4)] == ['photo', 'painting', 'photo', 'painting']
    assert sum(k == 'photo' for k in kinds.values()) == 29
    assert demo_data.read_kinds(ensure_demo_dataset(tmp_path / 'src', num_images=4, resolution=16)) is None
    elves = _load(d, 58).astype(np.float64)
    portraits = np.stack([draw_face(np.random.default_rng([0, i, 32]), 32) for i in range(58)]).astype(np.float64)
    # One character: the elves agree with each other far more than the random portraits do.
    spread = lambda x: np.abs(x - x.mean(axis=0)).mean()  # noqa: E731
    assert spread(elves) < 0.8 * spread(portraits)
    # Paintings: outlines and brush strokes (high frequencies), stronger colours than the photos.
    from scipy.ndimage import laplace
    photo, paint = elves[0::2], elves[1::2]
    hf = lambda x: np.mean([np.abs(laplace(im.mean(axis=-1))).mean() for im in x])  # noqa: E731
    sat = lambda x: (x.max(axis=-1) - x.min(axis=-1)).mean()  # noqa: E731
    assert hf(paint) > 1.5 * hf(photo) and sat(paint) > 1.4 * sat(photo)
    # Pointed ears on both sides, tips above the eye line and out past the hair.
    img, lab, geo = demo_data._draw(np.random.default_rng([0, 3, 32]), 32, demo_data._ELF)
    ys, xs = np.nonzero(lab == demo_data._EAR)
    cx_px, s = geo['cx'] * lab.shape[1], lab.shape[0]
    for side in (xs < cx_px, xs > cx_px):
        assert side.sum() > 20
        tip = ys[side].min() / s
        assert tip < geo['cy'] - geo['fh'] * 0.12 - 0.08  # well above the eyes
    ear = lab == demo_data._EAR
    near_bg = np.zeros_like(ear)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        near_bg |= np.roll(lab == demo_data._BG, (dy, dx), axis=(0, 1))
    assert (ear & near_bg).sum() > 10


def test_demo_source_honours_photo_ratio(tmp_path):
    import ml_collections

    from stylegan_jax.train import input_pipeline
    cfg = ml_collections.ConfigDict(dict(source='demo', path=str(tmp_path / 'elves'), resolution=32, xflip=False,
                                         num_images=58, shuffle_buffer=58, demo_set='elves', photo_ratio=None))
    sizes = {}
    for r in (None, 0.0, 0.25, 0.5, 1.0):
        cfg.photo_ratio = r
        sizes[r] = input_pipeline.dataset_size(cfg)
    # all 58; paintings only; all 29 paintings + floor(0.25 * 29 / 0.75) = 9 photos; all; photos only
    assert sizes == {None: 58, 0.0: 29, 0.25: 38, 0.5: 58, 1.0: 29}
    cfg.photo_ratio = 1.0
    photos = next(input_pipeline.create_input_iter(cfg, 29, seed=0))['image']
    paint = _load(tmp_path / 'elves', 58)[1::2]
    assert not any((p == q).all() for p in photos for q in paint)   # no painting among the photos
    cfg.update(demo_set='portraits', path=str(tmp_path / 'src'), num_images=8, photo_ratio=0.5)
    with pytest.raises(ValueError, match="known kind.*demo_set='elves'"):
        input_pipeline.dataset_size(cfg)
    cfg.update(demo_set='orcs', photo_ratio=None)
    with pytest.raises(ValueError, match='demo_set must be one of'):
        input_pipeline.dataset_size(cfg)
