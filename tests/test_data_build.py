"""data_prep.build: photo_ratio arithmetic, a TFDS build read back with tfds.builder_from_directory,
and the errors instead of empty or ratio-less datasets."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import build, cli
from data_prep.config import DataPrepError, dataset_name, snake_name


@pytest.mark.parametrize('photos,paintings,ratio,want', [
    (10, 30, 0.5, (10, 10)),     # photos are short: keep all, match paintings
    (10, 30, 0.25, (10, 30)),    # already exactly 1:3
    (40, 10, 0.5, (10, 10)),     # paintings are short
    (40, 10, 0.8, (40, 10)),
    (40, 10, 0.9, (40, 4)),      # 40 / 44 = 0.909: the nearest whole count
    (7, 9, None, (7, 9)),
    (7, 9, 0.0, (0, 9)),
    (7, 9, 1.0, (7, 0)),
])
def test_ratio_counts(photos, paintings, ratio, want):
    assert build.ratio_counts(photos, paintings, ratio) == want


def test_ratio_counts_rejects_bad_ratio():
    with pytest.raises(ValueError, match='photo_ratio'):
        build.ratio_counts(1, 1, 1.5)


def test_snake_name_and_the_one_naming_rule(tmp_path):
    assert snake_name('Wonder Woman!') == 'wonder_woman'
    assert snake_name('2b') == 'ds_2b'
    # name, else category, else the config file, else the input folder (its parent for a stage folder)
    assert dataset_name({'name': 'Elf Art', 'category': 'x'}) == 'elf_art'
    assert dataset_name({'category': 'Witcher'}, 'configs/data/other.py') == 'witcher'
    assert dataset_name({}, 'configs/data/wonder-woman.py', tmp_path) == 'wonder_woman'
    assert dataset_name({}, None, tmp_path / 'elf' / 'dedup') == 'elf'
    assert dataset_name({}, None, tmp_path / 'my set') == 'my_set'


RES = 64


def _make_inputs(d: Path, n_photo=6, n_paint=10):
    rng = np.random.default_rng(0)
    d.mkdir(parents=True)
    for i in range(n_photo):
        Image.fromarray(rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)).save(d / f'p{i}.jpg', quality=95)
        json.dump({'kind': 'photo', 'source_url': f'http://photos/{i}'}, open(d / f'p{i}.jpg.json', 'w'))
    for i in range(n_paint):
        size = (RES + 16, RES) if i == 0 else (RES, RES)  # one non-square, one RGBA PNG
        mode = 'RGBA' if i == 1 else 'RGB'
        arr = rng.integers(0, 255, (size[1], size[0], 4 if mode == 'RGBA' else 3), dtype=np.uint8)
        Image.fromarray(arr, mode).save(d / f'q{i}.png')
        json.dump({'kind': 'painting'}, open(d / f'q{i}.png.json', 'w'))
    (d / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 no')
    json.dump({'kind': 'photo'}, open(d / 'broken.jpg.json', 'w'))


def _read(ds_dir):
    import tensorflow_datasets as tfds
    b = tfds.builder_from_directory(str(ds_dir))
    rows = list(tfds.as_numpy(b.as_dataset(split='train')))
    return b, rows


def test_build_and_read_back(tmp_path):
    src = tmp_path / 'in'
    _make_inputs(src)
    cfg = {'name': 'Elf Test', 'resolution': RES, 'photo_ratio': 0.5, 'seed': 3}
    s = build.run(src, tmp_path / 'out', cfg)
    assert s['photos'] == 6 and s['paintings'] == 6 and s['photo_fraction'] == 0.5
    assert s['dropped_for_ratio'] == 4 and s['unreadable'] == 1 and s['rejected'] == 5   # records: 4 + 1
    ds_dir = tmp_path / 'out' / 'elf_test' / '1.0.0'
    b, rows = _read(ds_dir)
    assert b.info.splits['train'].num_examples == 12 and len(rows) == 12
    assert b.info.features['kind'].names == ['painting', 'photo']
    assert b.info.features['label'].names == ['Elf Test']
    kinds = [b.info.features['kind'].int2str(r['kind']) for r in rows]
    assert kinds.count('photo') == 6 and kinds.count('painting') == 6
    for r in rows:
        assert r['image'].shape == (RES, RES, 3) and r['image'].dtype == np.uint8 and r['label'] == 0
    sources = {r['source'].decode() for r in rows}
    assert {f'http://photos/{i}' for i in range(6)} <= sources
    # a JPEG already at the resolution is stored byte for byte (no second lossy encode)
    import tensorflow_datasets as tfds
    raw = list(tfds.as_numpy(b.as_dataset(split='train', decoders={'image': tfds.decode.SkipDecoding()})))
    r0 = next(r for r in raw if r['source'] == b'http://photos/0')
    assert r0['image'] == (src / 'p0.jpg').read_bytes()
    rep = json.loads((tmp_path / 'out' / 'report.json').read_text())
    st = [(Path(r['path']).name, r['status'], r['reason']) for r in rep['files']]
    assert sum(1 for _, s_, why in st if s_ == 'rejected' and why == 'photo_ratio') == 4
    assert ('broken.jpg', 'rejected') in [(n, s_) for n, s_, _ in st]
    dropped = sorted(n for n, s_, why in st if why == 'photo_ratio')

    # determinism: same seed elsewhere -> same selection; re-run in place -> reused, same report
    build.run(src, tmp_path / 'out2', cfg)
    rep2 = json.loads((tmp_path / 'out2' / 'report.json').read_text())
    assert sorted(Path(r['path']).name for r in rep2['files'] if r['reason'] == 'photo_ratio') == dropped
    s3 = build.run(src, tmp_path / 'out', cfg)
    assert s3['reused_existing'] and s3['examples'] == 12
    # another seed picks other paintings (10 choose 6 subsets: a collision would be a 1-in-210 fluke)
    build.run(src, tmp_path / 'out3', {**cfg, 'seed': 4})
    rep3 = json.loads((tmp_path / 'out3' / 'report.json').read_text())
    assert sorted(Path(r['path']).name for r in rep3['files'] if r['reason'] == 'photo_ratio') != dropped


def test_build_keep_all(tmp_path):
    src = tmp_path / 'in'
    _make_inputs(src, 2, 3)
    s = build.run(src, tmp_path / 'out', {'category': 'witcher', 'resolution': RES})
    assert s['examples'] == 5 and s['dropped_for_ratio'] == 0
    _, rows = _read(tmp_path / 'out' / 'witcher' / '1.0.0')
    assert len(rows) == 5


def test_photo_ratio_without_one_kind_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    src = tmp_path / 'in'
    _make_inputs(src, n_photo=0, n_paint=4)
    with pytest.raises(DataPrepError, match='photo_ratio 0.3 needs photos and paintings, found 0 photos and 4'):
        build.run(src, tmp_path / 'out', {'resolution': RES, 'photo_ratio': 0.3})
    assert not list((tmp_path / 'out').glob('*/1.0.0'))            # no dataset that ignores the ratio
    rc = cli.main(['build', '-i', str(src), '-o', str(tmp_path / 'o2'), '--set', 'build.photo_ratio=0.3',
                   '--set', f'build.resolution={RES}'])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith(f'data-prep: error: {src.resolve()}: photo_ratio') and '\n' not in err
    # 0 and 1 mean "one kind only" and are fine; so is no ratio
    assert build.run(src, tmp_path / 'o3', {'resolution': RES, 'photo_ratio': 0.0})['examples'] == 4
    with pytest.raises(DataPrepError, match=r'photo_ratio must be in \[0, 1\]'):
        build.run(src, tmp_path / 'o4', {'photo_ratio': 2})


def test_nothing_to_build_is_an_error(tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    (src / 'broken.jpg').write_bytes(b'not an image')
    with pytest.raises(DataPrepError, match='no usable image'):
        build.run(src, tmp_path / 'out')
