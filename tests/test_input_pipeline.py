"""Tests for stylegan_jax.train.input_pipeline on tiny generated folders and TFDS datasets.

The TFDS datasets are written here with the TFDS API (TFRecord shards serialised by the features
dict + ``tfds.folder_dataset.write_metadata``) with data-prep build's features: image (JPEG),
label (ClassLabel), kind (ClassLabel ['painting', 'photo']), source (Text). Every image encodes
its index in its pixels, so each yielded image can be traced back to its example.
"""
import json

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import data_paths
from stylegan_jax.metrics import sources
from stylegan_jax.train import input_pipeline as ip

tf = pytest.importorskip('tensorflow')
tfds = pytest.importorskip('tensorflow_datasets')

RES = 16


# ---------------------------------------------------------------------------------- fixtures

def _folder_images(n, res=RES, seed=0):
    """n random, left-right asymmetric RGB images (exact in PNG)."""
    return np.random.default_rng(seed).integers(0, 256, (n, res, res, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('folder')
    imgs = _folder_images(20)
    for i, im in enumerate(imgs):
        sub = d / ('a' if i % 2 else 'b')
        sub.mkdir(exist_ok=True)
        Image.fromarray(im).save(sub / f'{i:03d}.png')
    (d / 'notes.txt').write_text('ignored')
    return d, imgs


def _index_image(i, res=RES):
    """A JPEG-robust image encoding i: flat left half 8*i, flat right half 255 - 8*i."""
    img = np.zeros((res, res, 3), np.uint8)
    img[:, :res // 2] = 8 * i
    img[:, res // 2:] = 255 - 8 * i
    return img


def _decode_index(img):
    """The index of an _index_image (after the JPEG round trip, unflipped)."""
    left = float(img[:, :img.shape[1] // 4].mean())
    right = float(img[:, -img.shape[1] // 4:].mean())
    i = int(round(left / 8))
    if abs(left - 8 * i) > 3 or abs(right - (255 - 8 * i)) > 3:
        raise AssertionError(f'cannot decode image index (left={left}, right={right})')
    return i


N_TFDS = 20
TFDS_KINDS = [1 if i % 4 == 0 else 0 for i in range(N_TFDS)]  # 5 photos, 15 paintings


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp('tfds')
    vdir = data_dir / 'portraits' / '1.0.0'
    vdir.mkdir(parents=True)
    feats = tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(RES, RES, 3), encoding_format='jpeg'),
        'label': tfds.features.ClassLabel(names=['a', 'b', 'c']),
        'kind': tfds.features.ClassLabel(names=['painting', 'photo']),
        'source': tfds.features.Text(),
    })
    for shard in range(2):
        path = vdir / f'portraits-train.tfrecord-{shard:05d}-of-00002'
        with tf.io.TFRecordWriter(str(path)) as w:
            for i in range(shard * 10, shard * 10 + 10):
                w.write(feats.serialize_example({'image': _index_image(i), 'label': i % 3,
                                                 'kind': TFDS_KINDS[i], 'source': f'http://x/{i}'}))
    tfds.folder_dataset.write_metadata(data_dir=vdir, features=feats, split_infos=None,
                                       filename_template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}')
    return data_dir


def _cfg(**kw):
    base = dict(source='folder', path='', resolution=RES, xflip=False, photo_ratio=None,
                num_images=16, shuffle_buffer=1000)
    base.update(kw)
    return base


def _take(it, k):
    return [next(it) for _ in range(k)]


def _match(img, imgs):
    """(index, flipped) of img among the source images (exact match)."""
    for i, ref in enumerate(imgs):
        if np.array_equal(img, ref):
            return i, False
        if np.array_equal(img, ref[:, ::-1]):
            return i, True
    raise AssertionError('yielded image is not a (flipped) source image')


# ---------------------------------------------------------------------------------- folder

def test_folder_batches_epochs_and_determinism(folder):
    d, imgs = folder
    cfg = _cfg(path=str(d))
    a = _take(ip.create_input_iter(cfg, 4, seed=0), 10)  # 40 images = 2 epochs of 20
    b = _take(ip.create_input_iter(cfg, 4, seed=0), 10)
    c = _take(ip.create_input_iter(cfg, 4, seed=1), 10)
    assert a[0]['image'].shape == (4, RES, RES, 3) and a[0]['image'].dtype == np.uint8
    assert a[0]['label'].shape == (4, 0) and a[0]['label'].dtype == np.float32
    for x, y in zip(a, b):
        assert np.array_equal(x['image'], y['image'])
    assert not all(np.array_equal(x['image'], y['image']) for x, y in zip(a, c))
    order = [_match(im, imgs)[0] for batch in a for im in batch['image']]
    # Each epoch is a permutation of the dataset, and the two epochs are shuffled differently.
    assert sorted(order[:20]) == list(range(20)) and sorted(order[20:]) == list(range(20))
    assert order[:20] != order[20:] and order[:20] != list(range(20))
    assert ip.dataset_size(cfg) == 20


@pytest.mark.parametrize('k,cache', [(3, True), (7, True), (7, False)])
def test_resume_equals_skipping_batches(folder, monkeypatch, k, cache):
    d, _ = folder
    if not cache:  # decode per epoch instead of caching decoded images
        monkeypatch.setattr(ip, '_CACHE_BYTES', 0)
    cfg = _cfg(path=str(d), xflip=True, shuffle_buffer=8)  # buffer < n: shuffle buffer path too
    fresh = _take(ip.create_input_iter(cfg, 6, seed=3), k + 4)
    resumed = _take(ip.create_input_iter(cfg, 6, seed=3, start_step=k), 4)
    for x, y in zip(fresh[k:], resumed):  # k=3 resumes inside epoch 0, k=7 inside epoch 2
        assert np.array_equal(x['image'], y['image'])


def test_per_process_split(folder, monkeypatch):
    d, imgs = folder
    cfg = _cfg(path=str(d))
    seen = []
    for index in range(2):
        monkeypatch.setattr(ip, '_process_info', lambda index=index: (index, 2))
        batches = _take(ip.create_input_iter(cfg, 8, seed=0), 5)  # 5 x 4 = 20 = 2 local epochs
        assert batches[0]['image'].shape == (4, RES, RES, 3)  # local batch = global / processes
        idx = [_match(im, imgs)[0] for b in batches for im in b['image']]
        assert sorted(idx[:10]) == sorted(set(idx)) and len(set(idx)) == 10
        files = ip.list_image_files(d)  # sorted by relative path: a/001.png, ..., b/000.png, ...
        assert set(idx) == {int(f.stem) for f in files[index::2]}  # files[process_index::count]
        seen.append(set(idx))
        assert ip.dataset_size(cfg) == 20  # global count, whatever the process
    assert not seen[0] & seen[1]
    monkeypatch.setattr(ip, '_process_info', lambda: (0, 3))
    with pytest.raises(ValueError, match='multiple of the 3 data shards'):
        ip.create_input_iter(cfg, 8, seed=0)


@pytest.mark.parametrize('xflip', [False, True])
def test_local_shards_read_what_processes_read(folder, monkeypatch, xflip):
    """One shard per device: 1 process x 4 shards yields exactly what 2 processes x 2 shards yield
    together (each process its half of every batch), so the data does not depend on the host count."""
    d, _ = folder
    cfg = _cfg(path=str(d), xflip=xflip)
    single = _take(ip.create_input_iter(cfg, 8, seed=2, local_shards=4), 6)  # 6 x 2 per shard > 5 per shard
    halves = []
    for index in range(2):
        monkeypatch.setattr(ip, '_process_info', lambda index=index: (index, 2))
        halves.append(_take(ip.create_input_iter(cfg, 8, seed=2, local_shards=2), 6))
    for k in range(6):
        assert halves[0][k]['image'].shape == (4, RES, RES, 3)
        np.testing.assert_array_equal(np.concatenate([halves[0][k]['image'], halves[1][k]['image']]),
                                      single[k]['image'])
    # and resume works per shard
    monkeypatch.setattr(ip, '_process_info', lambda: (0, 1))
    resumed = _take(ip.create_input_iter(cfg, 8, seed=2, start_step=4, local_shards=4), 2)
    for x, y in zip(single[4:], resumed):
        np.testing.assert_array_equal(x['image'], y['image'])


def test_folder_reads_every_listed_image_type(tmp_path):
    """Training and the metrics share one extension list, and training decodes all of it (WebP and TIFF
    through Pillow: tf.io.decode_image does not read them)."""
    assert ip.IMAGE_EXTENSIONS is sources.IMAGE_EXTENSIONS is data_paths.IMAGE_EXTENSIONS
    imgs = _folder_images(len(data_paths.IMAGE_EXTENSIONS), seed=4)
    lossless = {}
    for i, (ext, im) in enumerate(zip(data_paths.IMAGE_EXTENSIONS, imgs)):
        path = tmp_path / f'{i}{ext.upper() if i % 2 else ext}'
        if ext in ('.jpg', '.jpeg'):
            imgs[i] = im = _index_image(i)  # smooth: survives JPEG closely
            Image.fromarray(im).save(path, format='JPEG', quality=95)
        elif ext == '.gif':
            im = np.full_like(im, (i * 20) % 256)  # GIF is palette-based: a flat image survives exactly
            Image.fromarray(im).save(path, format='GIF')
        else:
            Image.fromarray(im).save(path, format={'.tif': 'TIFF', '.tiff': 'TIFF'}.get(ext, None),
                                     **({'lossless': True} if ext == '.webp' else {}))
        if ext not in ('.jpg', '.jpeg'):
            lossless[i] = im
    assert len(ip.list_image_files(tmp_path)) == len(data_paths.IMAGE_EXTENSIONS)
    assert len(sources.FolderSource(tmp_path).files) == len(data_paths.IMAGE_EXTENSIONS)
    n = len(data_paths.IMAGE_EXTENSIONS)
    batch = next(ip.create_input_iter(_cfg(path=str(tmp_path), shuffle_buffer=1), n, seed=0))['image']
    files = ip.list_image_files(tmp_path)
    got = {int(f.stem): batch[j] for j, f in enumerate(files)}  # buffer 1: stored order
    assert set(got) == set(range(n))
    for i, im in lossless.items():
        np.testing.assert_array_equal(got[i], im, err_msg=data_paths.IMAGE_EXTENSIONS[i])
    for i in set(got) - set(lossless):
        assert np.abs(got[i].astype(int) - imgs[i]).mean() < 3  # JPEG


def test_unreadable_webp_is_a_one_line_error(tmp_path):
    (tmp_path / 'bad.webp').write_bytes(b'not an image')
    with pytest.raises(ValueError, match=r'bad\.webp: cannot read image \(cannot identify'):
        next(ip.create_input_iter(_cfg(path=str(tmp_path)), 1, seed=0))


def test_xflip_statistics_and_determinism(folder):
    d, imgs = folder
    cfg = _cfg(path=str(d), xflip=True)
    batches = _take(ip.create_input_iter(cfg, 10, seed=5), 40)  # 400 draws
    flips = np.array([_match(im, imgs)[1] for b in batches for im in b['image']])
    n = len(flips)
    assert abs(flips.mean() - 0.5) < 4 * np.sqrt(0.25 / n)
    # Independent of the epoch order: the same image is flipped in some epochs, not in others.
    per_image = {}
    for b in batches:
        for im in b['image']:
            i, f = _match(im, imgs)
            per_image.setdefault(i, set()).add(f)
    assert sum(len(v) == 2 for v in per_image.values()) >= 15
    # Without xflip nothing is flipped.
    plain = _take(ip.create_input_iter(_cfg(path=str(d)), 10, seed=5), 4)
    assert not any(_match(im, imgs)[1] for b in plain for im in b['image'])


def test_resize_area_and_centre_crop(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)  # non-square: 16 x 24
    for i, im in enumerate(big):
        Image.fromarray(im).save(tmp_path / f'{i}.png')
    batch = next(ip.create_input_iter(_cfg(path=str(tmp_path), resolution=8), 2, seed=0))
    crops = big[:, :, 4:20]  # centre 16 x 16
    want = crops.reshape(2, 8, 2, 8, 2, 3).astype(np.float64).mean(axis=(2, 4))  # 2x2 box = area
    got = batch['image'].astype(np.float64)
    pairs = [np.abs(got[j] - want[i]).max() for j in range(2) for i in range(2)]
    assert min(pairs[0], pairs[1]) <= 0.5 + 1e-6 and min(pairs[2], pairs[3]) <= 0.5 + 1e-6
    # Upscaling (Lanczos) keeps a flat image flat.
    flat = tmp_path / 'up'
    flat.mkdir()
    Image.fromarray(np.full((4, 4, 3), 77, np.uint8)).save(flat / 'f.png')
    up = next(ip.create_input_iter(_cfg(path=str(flat), resolution=16), 1, seed=0))['image']
    assert up.shape == (1, 16, 16, 3) and np.all(up == 77)


def test_folder_labels_from_dataset_json(folder, tmp_path):
    d, imgs = folder
    import shutil
    shutil.copytree(d, tmp_path / 'f')
    files = ip.list_image_files(tmp_path / 'f')
    labels = {f.relative_to(tmp_path / 'f').as_posix(): int(f.stem) % 4 for f in files}
    with pytest.raises(ValueError, match='dataset.json'):
        ip.create_input_iter(_cfg(path=str(tmp_path / 'f')), 4, seed=0, c_dim=4)
    (tmp_path / 'f' / 'dataset.json').write_text(json.dumps({'labels': list(labels.items())}))
    batch = next(ip.create_input_iter(_cfg(path=str(tmp_path / 'f')), 8, seed=0, c_dim=4))
    for im, lab in zip(batch['image'], batch['label']):
        i = _match(im, imgs)[0]
        np.testing.assert_array_equal(lab, np.eye(4, dtype=np.float32)[i % 4])


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='not found'):
        ip.create_input_iter(_cfg(path=str(tmp_path / 'missing')), 4, seed=0)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='empty.*no images'):
        ip.create_input_iter(_cfg(path=str(tmp_path / 'empty')), 4, seed=0)
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'x.png').write_bytes(b'not a png at all')
    it = ip.create_input_iter(_cfg(path=str(bad)), 1, seed=0)
    with pytest.raises(ValueError, match=r'bad/x\.png: cannot read image'):
        next(it)
    with pytest.raises(ValueError, match='no dataset_info.json'):
        ip.create_input_iter(_cfg(source='tfds', path=str(bad)), 4, seed=0)
    with pytest.raises(ValueError, match='power of two'):
        ip.create_input_iter(_cfg(path=str(bad), resolution=12), 4, seed=0)
    with pytest.raises(ValueError, match='source'):
        ip.create_input_iter(_cfg(source='zip'), 4, seed=0)


def test_epoch_order_is_a_shuffle_buffer():
    n = 50
    for buffer in (1, 5, 49, 50, 80):
        orders = [ip._epoch_order(n, min(buffer, n), seed) for seed in range(4)]
        for o in orders:
            assert sorted(o.tolist()) == list(range(n))  # every example once per epoch
            # a buffer of b can only emit example k after examples 0 .. k - b entered it
            assert np.all(o[np.arange(n)] <= np.arange(n) + buffer - 1)
        if buffer == 1:
            assert all(o.tolist() == list(range(n)) for o in orders)
        else:
            assert len({tuple(o) for o in orders}) == 4  # the seed matters
    np.testing.assert_array_equal(ip._epoch_order(n, 7, 3), ip._epoch_order(n, 7, 3))


def test_flip_hash_is_a_fair_stateless_coin():
    pos = np.arange(100_000)
    a = ip._flips(11, pos)
    assert abs(a.mean() - 0.5) < 4 * np.sqrt(0.25 / len(pos))
    assert abs((a[1:] == a[:-1]).mean() - 0.5) < 4 * np.sqrt(0.25 / len(pos))  # neighbours independent
    np.testing.assert_array_equal(ip._flips(11, pos[500:600]), a[500:600])  # depends on the position only
    assert (ip._flips(12, pos) != a).mean() > 0.45


def test_folder_input_imports_no_tensorflow(folder):
    """Folders and the demo are read with Pillow and numpy: TensorFlow stays out of the training process."""
    import subprocess
    import sys
    d, _ = folder
    code = ('import sys; from stylegan_jax.train import input_pipeline as ip; '
            f'it = ip.create_input_iter({{"source": "folder", "path": {str(d)!r}, "resolution": 8, '
            '"xflip": True}, 4, seed=0); b = next(it); '
            'print(b["image"].shape, "tensorflow" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == 'False' and '(4, 8, 8, 3)' in out.stdout


def test_unreadable_file_among_good_ones_is_named_at_its_batch(folder, tmp_path):
    import shutil
    d, _ = folder
    shutil.copytree(d, tmp_path / 'f')
    (tmp_path / 'f' / 'a' / 'zz_broken.png').write_bytes(b'\x89PNG truncated')
    it = ip.create_input_iter(_cfg(path=str(tmp_path / 'f'), shuffle_buffer=1), 3, seed=0)
    with pytest.raises(ValueError, match=r'zz_broken\.png: cannot read image') as e:
        for _ in range(8):  # 21 files in stored order: a/001..a/019, a/zz_broken (the 11th), b/...
            next(it)
    assert '\n' not in str(e.value)


def test_closing_the_iterator_stops_its_threads(folder):
    import threading
    d, _ = folder
    before = {t.ident for t in threading.enumerate()}
    it = ip.create_input_iter(_cfg(path=str(d)), 4, seed=0)
    next(it)
    assert any(t.name == 'input_pipeline' for t in threading.enumerate())
    it.close()
    for t in [t for t in threading.enumerate() if t.ident not in before]:
        t.join(timeout=5)
        assert not t.is_alive(), t.name


# ---------------------------------------------------------------------------------- demo

def test_demo_source_generates_in_workdir(tmp_path):
    import ml_collections  # the training configs are ConfigDicts
    cfg = ml_collections.ConfigDict(_cfg(source='demo', path='', resolution=16, num_images=12))
    batch = next(ip.create_input_iter(cfg, 4, seed=0, workdir=tmp_path))
    assert batch['image'].shape == (4, 16, 16, 3)
    assert len(list((tmp_path / 'demo_data').glob('*.png'))) == 12
    assert ip.dataset_size(cfg, workdir=tmp_path) == 12


# ---------------------------------------------------------------------------------- tfds

def test_find_tfds_dir_one_policy_for_training_and_metrics(tfds_dir, tmp_path):
    """data.path is read by training and by the metrics (FID during training): one function decides."""
    assert sources.find_tfds_dir is ip.find_tfds_dir is data_paths.find_tfds_dir
    vdir = tfds_dir / 'portraits' / '1.0.0'
    for p in (tfds_dir, tfds_dir / 'portraits', vdir):
        assert data_paths.find_tfds_dir(p) == vdir
        assert ip._tfds_version_dir(p) == vdir
        assert sources.open_source(p).builder_dir == vdir
    # several versions of one dataset: the highest (numerically: 1.10.0 > 1.9.0)
    ds = tmp_path / 'd' / 'faces'
    for v in ('1.9.0', '1.10.0', '0.9.0'):
        (ds / v).mkdir(parents=True)
        (ds / v / 'dataset_info.json').write_text('{}')
    assert data_paths.find_tfds_dir(ds) == ds / '1.10.0' == data_paths.find_tfds_dir(tmp_path / 'd')
    # several datasets: refused by both, naming them
    (tmp_path / 'd' / 'cats' / '1.0.0').mkdir(parents=True)
    (tmp_path / 'd' / 'cats' / '1.0.0' / 'dataset_info.json').write_text('{}')
    with pytest.raises(data_paths.DataPathError, match='several TFDS datasets .*cats, faces'):
        data_paths.find_tfds_dir(tmp_path / 'd')
    with pytest.raises(ValueError, match='several TFDS datasets'):
        ip.create_input_iter(_cfg(source='tfds', path=str(tmp_path / 'd')), 4, seed=0)
    with pytest.raises(ValueError, match='several TFDS datasets'):
        sources.open_source(tmp_path / 'd')
    # none: None for the shared function (metrics then read the folder), an error for training
    (tmp_path / 'plain').mkdir()
    assert data_paths.find_tfds_dir(tmp_path / 'plain') is None
    assert data_paths.find_tfds_dir(tmp_path / 'missing') is None
    with pytest.raises(ValueError, match='no dataset_info.json'):
        ip._tfds_version_dir(tmp_path / 'plain')


def test_tfds_epochs_labels_and_resume(tfds_dir):
    cfg = _cfg(source='tfds', path=str(tfds_dir))
    assert ip.dataset_size(cfg) == N_TFDS
    batches = _take(ip.create_input_iter(cfg, 5, seed=0, c_dim=3), 8)  # 2 epochs
    idx = [_decode_index(im) for b in batches for im in b['image']]
    assert sorted(idx[:20]) == list(range(20)) and sorted(idx[20:]) == list(range(20))
    labels = np.concatenate([b['label'] for b in batches])
    np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[np.array(idx) % 3])
    resumed = _take(ip.create_input_iter(cfg, 5, seed=0, c_dim=3, start_step=5), 3)
    for x, y in zip(batches[5:], resumed):
        assert np.array_equal(x['image'], y['image']) and np.array_equal(x['label'], y['label'])
    with pytest.raises(ValueError, match='c_dim=2'):
        ip.create_input_iter(cfg, 5, seed=0, c_dim=2)


def test_tfds_per_process_split(tfds_dir, monkeypatch):
    cfg = _cfg(source='tfds', path=str(tfds_dir))
    seen = []
    for index in range(2):
        monkeypatch.setattr(ip, '_process_info', lambda index=index: (index, 2))
        batches = _take(ip.create_input_iter(cfg, 4, seed=0), 5)  # local batch 2, one local epoch
        assert batches[0]['image'].shape == (2, RES, RES, 3)
        seen.append({_decode_index(im) for b in batches for im in b['image']})
        assert len(seen[-1]) == 10
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(N_TFDS))


def test_photo_ratio_mask_counts():
    kinds = np.array(TFDS_KINDS)  # 5 photos (1), 15 paintings (0)
    for ratio, (want_p, want_q) in {None: (5, 15), 0.5: (5, 5), 0.2: (3, 15), 0.75: (5, 1),
                                    0.0: (0, 15), 1.0: (5, 0), 0.25: (5, 15)}.items():
        keep = ip.photo_ratio_mask(kinds, ratio, seed=0)
        assert (keep & (kinds == 1)).sum() == want_p and (keep & (kinds == 0)).sum() == want_q, ratio
    a = ip.photo_ratio_mask(kinds, 0.5, seed=0)
    assert np.array_equal(a, ip.photo_ratio_mask(kinds, 0.5, seed=0))
    assert not np.array_equal(a, ip.photo_ratio_mask(kinds, 0.5, seed=1))
    with pytest.raises(ValueError, match='photo_ratio'):
        ip.photo_ratio_mask(kinds, 1.5, seed=0)


def test_tfds_photo_ratio_filters_kinds(tfds_dir):
    cfg = _cfg(source='tfds', path=str(tfds_dir), photo_ratio=0.5)
    assert ip.dataset_size(cfg) == 10
    batches = _take(ip.create_input_iter(cfg, 5, seed=0), 2)  # exactly one epoch of 10
    idx = [_decode_index(im) for b in batches for im in b['image']]
    assert len(set(idx)) == 10
    kinds = [TFDS_KINDS[i] for i in idx]
    assert kinds.count(1) == 5 and kinds.count(0) == 5
    with pytest.raises(ValueError, match='photo_ratio'):
        ip.create_input_iter(_cfg(path=str(tfds_dir), photo_ratio=0.5), 5, seed=0)
