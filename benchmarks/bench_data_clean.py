"""Throughput of the data_prep ``clean`` stage (images/s), serial and with the process pool.

  python benchmarks/bench_data_clean.py --n 200        # prints a JSON line

Inputs are generated scraped-looking files: 1024x768 colourful JPEGs (q92; most are copied
unchanged), one in 8 a PNG with alpha, one in 8 with an EXIF rotation (re-encoded), plus one in 16
a defect (truncated / grayscale / too small). The whole pipeline on scraped-like folders (clean
included) is ``bench_data_prep.py --stages N``; this one compares serial with the worker pool.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _image(rng: np.random.Generator, h: int = 768, w: int = 1024) -> Image.Image:
    # low-resolution colour field upsampled + noise: cheap to make, colourful, sharp
    base = rng.integers(0, 256, (h // 32, w // 32, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), np.int16)
    big = big + rng.normal(0, 10, big.shape).astype(np.int16)
    return Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))


def make_inputs(d: Path, n: int, seed: int = 0) -> None:
    """Write n generated inputs (a realistic mix of good, fixable and bad files) into d."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = _image(rng)
        p = d / f'img_{i:05d}.jpg'
        if i % 16 == 15:
            b = io.BytesIO()
            im.save(b, 'JPEG', quality=92)
            defect = (i // 16) % 3
            if defect == 0:
                p.write_bytes(b.getvalue()[: len(b.getvalue()) // 2])
            elif defect == 1:
                im.convert('L').save(p, quality=92)
            else:
                im.resize((200, 150)).save(p, quality=92)
        elif i % 8 == 3:
            im.convert('RGBA').save(p.with_suffix('.png'))
        elif i % 8 == 5:
            exif = im.getexif()
            exif[0x0112] = 6
            im.save(p, quality=92, exif=exif)
        else:
            im.save(p, quality=92)


def bench_clean(tmpdir: str, n: int, workers: int = 0) -> dict:
    """images/s of clean.run on n generated inputs in tmpdir (serial, then the default pool)."""
    from data_prep import clean
    tmp = Path(tmpdir)
    src = tmp / 'in'
    make_inputs(src, n)
    res = {'images': n}
    for label, w in (('serial', 1), ('pool', workers or os.cpu_count() or 1)):
        out = tmp / f'out_{label}'
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        s = clean.run(src, out, {'workers': w})
        dt = time.perf_counter() - t
        res[label] = {'workers': w, 'seconds': round(dt, 2), 'images_per_s': round(n / dt, 2),
                      'kept': s['kept'], 'rejected': s['rejected']}
    res['images_per_s'] = res['pool']['images_per_s']
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = bench_clean(tmp, args.n)
    r['machine'] = f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores'
    print(json.dumps(r))


if __name__ == '__main__':
    main()
