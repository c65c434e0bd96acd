"""clean stage on generated messy files: each defect rejected with its reason, each fixable file
normalised to RGB with pixels checked against an independent Pillow/numpy computation; re-runs redo
what changed (settings, inputs), a vanished input's output goes, a dead worker is a record."""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from data_prep import clean
from data_prep.config import DataPrepError
from data_prep.report import read_sidecar


def portrait(seed: int, h: int = 320, w: int = 288) -> Image.Image:
    """Colourful smooth field + fine noise: sharp, colourful, > 40 KB as JPEG q95."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(1, 5, 3)
        img[..., c] = 128 + 60 * np.sin(fx * 6.3 * xx + ph) * np.cos(fy * 6.3 * yy + c)
    img += rng.normal(0, 14, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _jpeg_bytes(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, 'JPEG', **{'quality': 95, **kw})
    return b.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h (RGB) with a tiny bogus IDAT: a bomb that costs nothing to make."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')


def _write(d: Path, name: str, data) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        im, kw = data
        im.save(p, **kw)
    return p


@pytest.fixture(scope='module')
def messy(tmp_path_factory):
    d = tmp_path_factory.mktemp('messy')
    expect = {}

    def add(name, data, verdict):
        _write(d, name, data)
        expect[name] = verdict

    for i in range(3):
        add(f'ok_{i}.jpg', _jpeg_bytes(portrait(i)), 'kept')
    rgba = portrait(10).convert('RGBA')
    a = np.array(rgba)
    a[:40, :40, 3] = 0            # fully transparent corner -> must become white
    add('sub/alpha.png', (Image.fromarray(a, 'RGBA'), {}), 'kept')
    add('cmyk.jpg', (portrait(11).convert('CMYK'), {'quality': 95}), 'kept')
    add('palette.png', (portrait(12).convert('P', palette=Image.ADAPTIVE, colors=256), {}), 'kept')
    ex = portrait(13, 320, 400)
    exif = ex.getexif()
    exif[0x0112] = 6               # stored landscape, displayed rotated 90 degrees clockwise
    add('exif6.jpg', (ex, {'quality': 95, 'exif': exif}), 'kept')
    add('no_extension', _jpeg_bytes(portrait(14)), 'kept')
    add('empty.jpg', b'', 'rejected:empty')
    add('error.jpg', b'<!DOCTYPE html><html><body>403 Forbidden</body></html>\n' * 2000, 'rejected:html')
    add('notes.png', b'just some text\n' * 5000, 'rejected:not_an_image')
    add('random.jpg', np.random.default_rng(0).bytes(70000), 'rejected:not_an_image')
    full = _jpeg_bytes(portrait(15, 560, 520))
    add('truncated.jpg', full[: len(full) // 2], 'rejected:truncated')
    add('tiny.jpg', (portrait(16, 200, 180), {'quality': 95}), 'rejected:too_small')
    add('smallfile.jpg', (portrait(17).filter(ImageFilter.GaussianBlur(6)), {'quality': 30}),
        'rejected:small_file')
    add('bomb.png', _png_header_only(40000, 30000), 'rejected:decompression_bomb')
    add('gray.jpg', (portrait(18).convert('L'), {'quality': 95}), 'rejected:monochrome')
    g = np.asarray(portrait(19).convert('L'), np.float64)[..., None]
    sepia = np.clip(g * np.array([1.0, 0.82, 0.6]) + np.array([20, 10, 0]), 0, 255).astype(np.uint8)
    add('sepia.png', (Image.fromarray(sepia), {}), 'rejected:monochrome')
    # blurred copy of a colourful image (saved as PNG so it stays over 40 KB)
    add('blurry.png', (portrait(20, 600, 560).filter(ImageFilter.GaussianBlur(8)), {}), 'rejected:blurry')
    (d / 'ok_0.jpg.json').write_text(json.dumps({'kind': 'photo', 'source': 'http://example/a'}))
    digests = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in d.rglob('*') if p.is_file()}
    return d, expect, digests


@pytest.fixture(scope='module')
def cleaned(messy, tmp_path_factory):
    d, expect, digests = messy
    out = tmp_path_factory.mktemp('clean')
    summary = clean.run(d, out, {'workers': 1})
    rows = json.loads((out / 'report.json').read_text())['files']
    return out, summary, {str(Path(r['path']).relative_to(d)): r for r in rows}


def test_every_file_judged_with_reason(messy, cleaned):
    _, expect, _ = messy
    _, summary, by = cleaned
    assert sorted(by) == sorted(expect)
    for name, verdict in expect.items():
        r = by[name]
        status, _, why = verdict.partition(':')
        assert r['status'] == status, (name, r['reason'])
        if why:
            assert r['reason'].startswith(why), (name, r['reason'])
    assert summary['kept'] == 8 and summary['inputs'] == len(expect)


def test_inputs_untouched(messy, cleaned):
    d, _, digests = messy
    now = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in d.rglob('*') if p.is_file()}
    assert now == digests


def test_rgb_outputs_match_independent_conversion(messy, cleaned):
    d, _, _ = messy
    out, _, by = cleaned
    for r in by.values():
        if r['status'] == 'kept':
            with Image.open(r['output']) as im:
                assert im.mode == 'RGB' and Path(r['output']).parent == out
    # unchanged JPEG: bytes copied exactly
    assert Path(by['ok_1.jpg']['output']).read_bytes() == (d / 'ok_1.jpg').read_bytes()
    # RGBA: transparent corner white, opaque area equals the RGB data (PNG is lossless)
    a = np.asarray(Image.open(by['sub/alpha.png']['output']))
    src = np.asarray(Image.open(d / 'sub/alpha.png'))
    assert (a[:40, :40] == 255).all()
    np.testing.assert_array_equal(a[40:, 40:], src[40:, 40:, :3])
    # palette: exactly Pillow's palette lookup
    np.testing.assert_array_equal(np.asarray(Image.open(by['palette.png']['output'])),
                                  np.asarray(Image.open(d / 'palette.png').convert('RGB')))
    # CMYK JPEG -> RGB JPEG close to Pillow's own conversion
    ref = np.asarray(Image.open(d / 'cmyk.jpg').convert('RGB'), np.float64)
    got = np.asarray(Image.open(by['cmyk.jpg']['output']), np.float64)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 6.0  # q95 re-encode of noisy pixels: ~3
    # EXIF orientation 6: output is the stored pixels rotated 90 degrees clockwise
    stored = Image.open(d / 'exif6.jpg')
    ref = np.asarray(stored.transpose(Image.Transpose.ROTATE_270), np.float64)
    got = np.asarray(Image.open(by['exif6.jpg']['output']), np.float64)
    assert got.shape == ref.shape == (400, 320, 3) and np.abs(got - ref).mean() < 6.0  # q95 re-encode of noisy pixels: ~3
    assert by['no_extension']['output'].endswith('.jpg')
    assert by['sub/alpha.png']['output'].endswith('.png')


def test_sidecar_metadata_propagates(cleaned):
    _, summary, by = cleaned
    r = by['ok_0.jpg']
    assert r['extra']['kind'] == 'photo'
    side = read_sidecar(Path(r['output']))
    assert side['kind'] == 'photo' and side['source'] == 'http://example/a'
    assert side['clean']['width'] == 288 and side['clean']['height'] == 320
    assert summary['by_kind']['photo'] == 1


def test_resume_and_idempotence(messy, cleaned, tmp_path):
    d, _, _ = messy
    out, _, by = cleaned
    outputs = {n: hashlib.sha1(Path(r['output']).read_bytes()).hexdigest() for n, r in by.items() if r['output']}
    again = clean.run(d, out, {'workers': 1})
    assert again['processed_now'] == 0 and again['kept'] == 8
    Path(by['palette.png']['output']).unlink()          # a lost output is redone, nothing else
    third = clean.run(d, out, {'workers': 1})
    assert third['processed_now'] == 1
    now = {n: hashlib.sha1(Path(r['output']).read_bytes()).hexdigest() for n, r in by.items() if r['output']}
    assert now == outputs


def test_parallel_matches_serial(messy, cleaned, tmp_path):
    d, _, _ = messy
    _, _, by = cleaned
    out2 = tmp_path / 'par'
    clean.run(d, out2, {'workers': 2})
    rows = json.loads((out2 / 'report.json').read_text())['files']
    par = {str(Path(r['path']).relative_to(d)): (r['status'], r['reason'], r['output'] and Path(r['output']).name)
           for r in rows}
    ser = {n: (r['status'], r['reason'], r['output'] and Path(r['output']).name) for n, r in by.items()}
    assert par == ser
    assert (out2 / 'report' / 'kept.png').exists() and (out2 / 'report' / 'rejected.png').exists()


def test_refuses_output_equal_input(messy):
    d, _, _ = messy
    with pytest.raises(DataPrepError, match='must differ'):
        clean.run(d, d)


def _outputs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix in ('.jpg', '.png'))


def test_changed_setting_and_inputs_are_redone(tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    for i, (h, w) in enumerate([(320, 288), (420, 400), (520, 500)]):
        (src / f'p{i}.jpg').write_bytes(_jpeg_bytes(portrait(i, h, w)))
    out = tmp_path / 'out'
    assert clean.run(src, out, {'workers': 1})['kept'] == 3
    # a stricter setting: the affected files are judged again and their outputs removed
    s = clean.run(src, out, {'workers': 1, 'min_side': 400})
    assert s['processed_now'] == 3 and s['kept'] == 2 and s['config']['min_side'] == 400
    assert len(_outputs(out)) == 2 and not any(n.startswith('p0_') for n in _outputs(out))
    assert clean.run(src, out, {'workers': 1, 'min_side': 400})['processed_now'] == 0   # idempotent
    # a changed input file is judged again, alone
    (src / 'p1.jpg').write_bytes(_jpeg_bytes(portrait(9, 300, 300)))
    s = clean.run(src, out, {'workers': 1, 'min_side': 400})
    assert s['processed_now'] == 1 and s['kept'] == 1
    # a vanished input: its output is removed so later stages never read it
    (src / 'p2.jpg').unlink()
    s = clean.run(src, out, {'workers': 1, 'min_side': 400})
    assert s['kept'] == 0 and s['stale_removed'] == 1 and _outputs(out) == []
    assert [Path(r['path']).name for r in json.loads((out / 'report.json').read_text())['files']] == ['p0.jpg', 'p1.jpg']


def test_unreadable_sidecar_is_a_warning(tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    (src / 'a.jpg').write_bytes(_jpeg_bytes(portrait(1)))
    (src / 'a.jpg.json').write_text('{"kind": "photo"')           # truncated JSON
    s = clean.run(src, tmp_path / 'out', {'workers': 1})
    row = json.loads((tmp_path / 'out' / 'report.json').read_text())['files'][0]
    assert row['status'] == 'kept' and 'not JSON' in row['extra']['warnings'][0]
    assert s['warning_count'] == 1 and 'a.jpg: sidecar a.jpg.json is not JSON' in capsys.readouterr().err


def test_dead_worker_is_a_record_not_a_hang(tmp_path):
    """A worker killed mid-file (as by the OOM killer on a huge image) becomes a record for the file
    it held; the others finish, and the next run retries that file."""
    import multiprocessing
    import signal
    import threading
    import time
    src = tmp_path / 'in'
    src.mkdir()
    for i in range(24):
        (src / f'p{i:02d}.jpg').write_bytes(_jpeg_bytes(portrait(i, 900, 800)))
    out = tmp_path / 'out'
    res = {}
    t = threading.Thread(target=lambda: res.update(clean.run(src, out, {'workers': 2, 'copy_unchanged_jpeg': False})))
    t.start()
    killed = None
    deadline = time.time() + 60
    while killed is None and time.time() < deadline and t.is_alive():
        kids = [p for p in multiprocessing.active_children() if p.is_alive()]
        if kids:
            time.sleep(0.5)                               # let it take a file
            os.kill(kids[0].pid, signal.SIGKILL)
            killed = kids[0].pid
        time.sleep(0.05)
    t.join(120)
    assert not t.is_alive() and killed is not None
    rows = json.loads((out / 'report.json').read_text())['files']
    assert len(rows) == 24
    dead = [r for r in rows if (r['reason'] or '').startswith('worker_died')]
    assert len(dead) == 1 and 'SIGKILL' in dead[0]['reason']
    assert res['kept'] == 23
    again = clean.run(src, out, {'workers': 1, 'copy_unchanged_jpeg': False})
    assert again['processed_now'] == 1 and again['kept'] == 24


def test_metric_identities():
    half = np.zeros((4, 8, 3), np.uint8)
    half[:, :4, 0] = 255            # pure red | pure green: rg = +-255 (std 255, mean 0), yb = 127.5 const
    half[:, 4:, 1] = 255
    assert clean.colourfulness(half) == pytest.approx(255 + 0.3 * 127.5)
    assert clean.colourfulness(np.full((5, 5, 3), 77, np.uint8)) == 0.0
    checker = (np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(checker[..., None], 3, -1)
    assert clean.sharpness(rgb) == pytest.approx(1020.0 ** 2)   # |4 * 255| at every pixel
    assert clean.sharpness(np.full((9, 9, 3), 200, np.uint8)) == 0.0
    lum = np.linspace(0, 255, 64)[None, :, None] * np.ones((8, 1, 1))
    toned = np.clip(lum * np.array([1.0, 0.8, 0.55]), 0, 255)
    assert clean.tint_residual(toned) < 1e-6          # colour is an exact function of brightness
    assert clean.tint_residual(np.asarray(portrait(3))) > 12


def test_to_rgb_high_bit_depth_and_gray_alpha():
    v = (np.arange(256 * 4, dtype=np.uint16).reshape(16, 64) * 64)    # spans 0..65472
    rgb, notes = clean.to_rgb(Image.fromarray(v))
    got = np.asarray(rgb)
    assert rgb.mode == 'RGB' and 'high_bit_depth' in notes
    np.testing.assert_allclose(got[..., 0], np.round(v / 257.0), atol=1)
    la = Image.merge('LA', [Image.new('L', (4, 4), 10), Image.new('L', (4, 4), 0)])
    assert np.asarray(clean.to_rgb(la)[0]).tolist() == np.full((4, 4, 3), 255).tolist()
