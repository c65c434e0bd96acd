"""data_prep.dedup: hashes, exact/indexed pair search, clustering, and the stage on generated copies."""
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from data_prep import dedup


def _random_codes(rng, n):
    return rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)


def _flip_bits(x, k, rng):
    for b in rng.choice(64, k, replace=False):
        x ^= 1 << int(b)
    return x


def _reference_pairs(p, d, pf, df, tp, td):
    """Independent all-pairs reference with Python ints."""
    p, d, pf, df = ([int(v) for v in a] for a in (p, d, pf, df))
    ham = lambda a, b: bin(a ^ b).count('1')  # noqa: E731
    out = set()
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            if (ham(p[i], p[j]) <= tp and ham(d[i], d[j]) <= td) or \
               (ham(p[i], pf[j]) <= tp and ham(d[i], df[j]) <= td) or \
               (ham(pf[i], p[j]) <= tp and ham(df[i], d[j]) <= td):
                out.add((i, j))
    return out


@pytest.fixture(scope='module')
def planted():
    """250 random hash sets with pairs planted at pHash distances 0..12 (some mirrored)."""
    rng = np.random.default_rng(1)
    n = 250
    p, d, pf, df = (_random_codes(rng, n) for _ in range(4))
    p, d, pf, df = ([int(v) for v in a] for a in (p, d, pf, df))
    for t, (i, j) in enumerate(rng.permutation(n).reshape(-1, 2)[:60]):
        k = t % 13
        if t % 4 == 3:  # j is a mirrored copy of i: its direct hash is near i's flipped hash
            p[j], d[j] = _flip_bits(pf[i], k, rng), _flip_bits(df[i], 2, rng)
            pf[j], df[j] = _flip_bits(p[i], k, rng), _flip_bits(d[i], 2, rng)
        else:
            p[j], d[j] = _flip_bits(p[i], k, rng), _flip_bits(d[i], 2, rng)
    return tuple(np.array(a, np.uint64) for a in (p, d, pf, df))


def _as_set(pairs):
    return set(map(tuple, np.asarray(pairs).tolist()))


def test_brute_force_matches_reference(planted):
    ref = _reference_pairs(*planted, 10, 20)
    assert len(ref) >= 35  # planted pairs at distance <= 10 (plus nothing random: random pairs are ~32 apart)
    assert _as_set(dedup.find_pairs(*planted, phash_threshold=10, dhash_threshold=20)) == ref


@pytest.mark.parametrize('radius', [10, 4])
def test_multi_index_search(planted, radius):
    """Index path: exact for radius == threshold; with a smaller radius every pair within it is found,
    and nothing beyond the threshold is ever reported."""
    ref = _reference_pairs(*planted, 10, 20)
    got = _as_set(dedup.find_pairs(*planted, phash_threshold=10, dhash_threshold=20, brute_force_max=0,
                                   index_radius=radius, threads=2))
    assert got <= ref
    within = _reference_pairs(*planted, radius, 20)
    assert within <= got
    if radius == 10:
        assert got == ref


def test_identical_flood_and_no_mirror():
    """Many identical hashes collapse to one cluster cheaply; mirror=False ignores flipped hashes."""
    rng = np.random.default_rng(2)
    p, d = _random_codes(rng, 300), _random_codes(rng, 300)
    p[:200], d[:200] = p[0], d[0]
    pairs = dedup.find_pairs(p, d, mirror=False, brute_force_max=0, index_radius=6)
    labels = dedup.clusters(300, pairs)
    assert len(set(labels[:200].tolist())) == 1 and len(set(labels[200:].tolist())) == 100


def test_hash_bits_match_imagehash_hex():
    rng = np.random.default_rng(3)
    im = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    h = dedup.hash_image(im)
    assert h['phash'] == int(str(imagehash.phash(im)), 16)
    assert h['dhash'] == int(str(imagehash.dhash(im)), 16)
    assert h['phash_flip'] == int(str(imagehash.phash(ImageOps.mirror(im))), 16)
    a, b = np.array([0b1011, 2 ** 64 - 1], np.uint64), np.array([0b0001, 0], np.uint64)
    assert dedup.hamming(a, b).tolist() == [2, 64]


def test_choose_kept_prefers_pixels_then_size_then_name():
    labels = np.array([0, 0, 0, 1, 1])
    kept = dedup.choose_kept(labels, [100, 400, 400, 9, 9], [5, 1, 2, 3, 3], ['a', 'b', 'c', 'y', 'x'])
    assert kept.tolist() == [2, 2, 2, 4, 4]


def _scene(rng, size=256):
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    img = np.zeros((size, size, 3)) + rng.uniform(40, 200, 3)
    img += (xx / size)[..., None] * rng.uniform(-80, 80, 3) + (yy / size)[..., None] * rng.uniform(-80, 80, 3)
    for _ in range(rng.integers(4, 8)):
        cy, cx, ry, rx = rng.uniform(0, size, 2).tolist() + rng.uniform(15, 100, 2).tolist()
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[m] = img[m] * 0.3 + rng.uniform(0, 255, 3) * 0.7
    img += rng.normal(0, 5, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


EDITS = {
    'reencoded': lambda im: im,
    'resized': lambda im: im.resize((190, 190), Image.LANCZOS),
    'cropped': lambda im: im.crop((5, 5, 251, 251)),            # 2% each side
    'recoloured': lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(0.9)).enhance(1.3),
    'mirrored': ImageOps.mirror,
    'mirrored_resized': lambda im: ImageOps.mirror(im).resize((200, 200), Image.BILINEAR),
}


@pytest.fixture()
def copies(tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / 'in'
    (src / 'sub').mkdir(parents=True)
    expect = {}
    originals = []
    for i in range(14):
        name = f'orig_{i:02d}.jpg'
        im = _scene(rng)
        im.save(src / name, quality=95)
        json.dump({'kind': 'painting' if i % 2 else 'photo', 'source_url': f'http://x/{i}'},
                  open(src / (name + '.json'), 'w'))
        originals.append((name, im))
    for k, (kind, fn) in enumerate(EDITS.items()):
        name, im = originals[k]
        dup = f'sub/copy_{kind}.jpg'
        fn(im).save(src / dup, quality=70)
        expect[dup] = name
    # a bigger copy of original 10 must win over it
    originals[10][1].resize((300, 300), Image.LANCZOS).save(src / 'big_10.png')
    (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    return src, expect


def test_stage_on_generated_copies(copies, tmp_path):
    src, expect = copies
    out = tmp_path / 'out'
    summary = dedup.run(src, out)
    rep = json.loads((out / 'report.json').read_text())
    by = {str(Path(r['path']).relative_to(src)): r for r in rep['files']}
    for dup, orig in expect.items():
        assert by[dup]['status'] == 'duplicate', (dup, by[dup])
        assert Path(by[dup]['duplicate_of']).name == orig
    assert by['orig_10.jpg']['status'] == 'duplicate' and Path(by['orig_10.jpg']['duplicate_of']).name == 'big_10.png'
    assert by['broken.jpg']['status'] == 'rejected' and by['broken.jpg']['reason']
    kept = [r for r in rep['files'] if r['status'] == 'kept']
    assert len(kept) == 14 and summary['kept'] == 14 and summary['duplicates'] == len(expect) + 1
    outs = sorted(p.name for p in out.iterdir() if p.suffix in ('.jpg', '.png'))
    assert len(outs) == 14 and all(Path(r['output']).is_file() for r in kept)
    side = json.loads(Path(by['orig_03.jpg']['output'] + '.json').read_text())
    assert side == {'kind': 'painting', 'source_url': 'http://x/3'}
    assert (out / 'report').is_dir()
    # re-run: idempotent, nothing re-hashed (hashes come from the report), same decisions
    before = {k: (v['status'], v['duplicate_of']) for k, v in by.items()}
    dedup.run(src, out)
    rep2 = json.loads((out / 'report.json').read_text())
    assert {str(Path(r['path']).relative_to(src)): (r['status'], r['duplicate_of']) for r in rep2['files']} == before
    assert sorted(p.name for p in out.iterdir() if p.suffix in ('.jpg', '.png')) == outs


def test_distinct_images_not_merged(tmp_path):
    """40 distinct scenes: nothing is a duplicate at the default thresholds."""
    rng = np.random.default_rng(9)
    src = tmp_path / 'd'
    src.mkdir()
    for i in range(40):
        _scene(rng, 128).save(src / f's{i}.png')
    s = dedup.run(src, tmp_path / 'o', {'copy_kept': False})
    assert s['duplicates'] == 0 and s['kept'] == 40


def test_aligned_faces_of_different_people_not_merged():
    """Face crops are aligned, so distinct faces hash closer than distinct scenes: the 100 LFW faces that
    scikit-image ships must stay 100 clusters at the default thresholds."""
    from skimage import data
    faces = (data.lfw_subset()[:100] * 255).astype(np.uint8)
    hs = [dedup.hash_image(Image.fromarray(a).resize((128, 128))) for a in faces]
    arr = [np.array([h[k] for h in hs], np.uint64) for k in ('phash', 'dhash', 'phash_flip', 'dhash_flip')]
    cfg = dedup.DEFAULTS
    assert len(dedup.find_pairs(*arr, phash_threshold=cfg['phash_threshold'],
                                dhash_threshold=cfg['dhash_threshold'])) == 0
    # while their re-encoded, mirrored copies are all found
    copies = [dedup.hash_image(ImageOps.mirror(Image.fromarray(a).resize((128, 128))).resize((100, 100)))
              for a in faces[:20]]
    both = [np.concatenate([a, np.array([h[k] for h in copies], np.uint64)])
            for a, k in zip(arr, ('phash', 'dhash', 'phash_flip', 'dhash_flip'))]
    pairs = dedup.find_pairs(*both, phash_threshold=cfg['phash_threshold'], dhash_threshold=cfg['dhash_threshold'])
    assert _as_set(pairs) == {(i, 100 + i) for i in range(20)}
