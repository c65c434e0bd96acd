"""Tests for stylegan_jax.train.progress (samples/progress.png + SWD at every grid), without training:
the "grids" are demo images, so the expected SWD trend is known (portraits -> elves falls)."""
import numpy as np
import pytest
from PIL import Image

from stylegan_jax.metrics.swd import SWD
from stylegan_jax.train.demo_data import draw_demo_image
from stylegan_jax.train.progress import PICTURE, STATE, Progress


def _set(name: str, seed: int, n: int = 16) -> np.ndarray:
    return np.stack([draw_demo_image(name, seed, i, 32)[0] for i in range(n)])


@pytest.fixture(scope='module')
def images():
    return {'reals': _set('elves', 0, 24), 'source': _set('portraits', 1), 'target': _set('elves', 2)}


def test_picture_metrics_and_summary(tmp_path, images):
    lines = []
    p = Progress(images['reals'], tmp_path, rows=4, total_kimg=2.0, log=lines.append)
    # A "transfer": source-domain faces at kimg 0, a half-way mix, target-domain faces at the end.
    mix = np.concatenate([images['source'][:8], images['target'][8:]])
    m0 = p.update(0.0, images['source'])
    m1 = p.update(1.0, mix)
    m2 = p.update(2.0, images['target'])
    assert m0 == SWD(images['reals'])(images['source'])           # the metric is metrics.swd's
    assert set(m0) == {'swd', 'swd_32', 'swd_16'}
    assert m0['swd'] > m1['swd'] > m2['swd']
    assert lines[0].startswith('kimg 0.0: SWD ') and len(lines) == 4
    assert lines[-1].startswith('SWD (x1e3) from kimg 0.0 to 2.0:') and '(fell;' in lines[-1]
    pic = np.asarray(Image.open(tmp_path / PICTURE))
    cell = 32 * 3                                                   # 32 px images shown 3x
    assert pic.shape == (34 + 4 * cell + 3 * 2, 4 * (cell + 2) - 2 + 10, 3)
    # column 0 holds the first reals, column 1 the kimg-0 images, upscaled with nearest neighbours
    np.testing.assert_array_equal(pic[34:34 + cell:3, 0:cell:3], images['reals'][0])
    x1 = cell + 2 + 10
    np.testing.assert_array_equal(pic[34:34 + cell:3, x1:x1 + cell:3], images['source'][0])
    assert (pic[:30] < 128).any()                                   # labels drawn in the header


def test_resume_keeps_earlier_columns_and_replaces_repeats(tmp_path, images):
    p = Progress(images['reals'], tmp_path, rows=2, log=lambda s: None)
    for k in (0.0, 1.0, 2.0):
        p.update(k, images['source'])
    # A run resumed from kimg 1 keeps the columns up to 1 (those after it will be redone).
    q = Progress(images['reals'], tmp_path, rows=2, start_kimg=1.0, log=lambda s: None)
    assert q.kimgs == [0.0, 1.0] and len(q.columns) == 2 and q.metrics == p.metrics[:2]
    q.update(1.0, images['target'])                                 # same kimg again: replaces the column
    assert q.kimgs == [0.0, 1.0]
    np.testing.assert_array_equal(q.columns[-1], images['target'][:2])
    # A state file from another resolution (or a damaged one) is ignored, not an error.
    (tmp_path / STATE).write_bytes(b'not an npz')
    assert Progress(images['reals'], tmp_path, log=lambda s: None).kimgs == []


def test_many_grids_show_first_last_and_evenly_spaced(tmp_path, images):
    p = Progress(images['reals'], tmp_path, rows=1, max_columns=4, log=lambda s: None)
    for k in range(10):
        p.update(float(k), images['source'])
    assert p._shown() == [0, 3, 6, 9]
    assert np.asarray(Image.open(tmp_path / PICTURE)).shape[1] == 5 * (96 + 2) - 2 + 10


def test_bad_reals_are_refused(tmp_path):
    with pytest.raises(ValueError, match='uint8'):
        Progress(np.zeros((2, 32, 32, 3), np.float32), tmp_path)


def test_images_below_16px_get_the_picture_without_swd(tmp_path, images):
    # SWD's coarsest level is 16x16: tiny test/toy runs must still train and draw progress.png.
    small = lambda x: np.stack([np.asarray(Image.fromarray(i).resize((8, 8), Image.BOX)) for i in x])
    lines = []
    p = Progress(small(images['reals']), tmp_path, rows=2, total_kimg=1.0, log=lines.append)
    assert p.update(0.0, small(images['source'])) == {} and p.update(1.0, small(images['target'])) == {}
    assert 'no SWD' in lines[0] and len(lines) == 2
    assert p.summary() == 'SWD: no grids scored'
    assert np.asarray(Image.open(tmp_path / PICTURE)).shape == (34 + 2 * 96 + 2, 3 * (96 + 2) - 2 + 10, 3)
    assert Progress(small(images['reals']), tmp_path, start_kimg=1.0, log=lambda s: None).kimgs == [0.0, 1.0]
