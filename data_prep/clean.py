"""Stage 2, ``clean``: decode every file defensively, normalise it to RGB, reject what is unusable.

For each input file, in this order (first failing check gives the reason):

1. ``empty``: a 0-byte file.
2. ``html`` / ``not_an_image``: Pillow cannot identify it (an HTML error page saved as .jpg, text...).
3. ``decompression_bomb``: width x height above ``max_pixels`` (read from the header, nothing decoded).
4. ``too_small``: shorter side below ``min_side`` pixels (header only).
5. ``small_file``: fewer than ``min_bytes`` bytes (heavily compressed thumbnails and previews).
6. ``truncated`` / ``decode_error``: the full decode fails.
7. Normalise: EXIF orientation applied; embedded ICC profile converted to sRGB; CMYK / YCbCr / LAB,
   palette, 1-bit, grayscale and 16-bit / 32-bit integer or float images converted to 8-bit RGB; any
   alpha channel (RGBA, LA, palette transparency) composited on white.
8. ``monochrome``: Hasler & Suesstrunk (2003) colourfulness below ``min_colourfulness`` -- grayscale,
   sepia and pencil sketches (their scale: 0 not colourful, 15 slightly, 33 moderately, 45 average).
   ``monochrome`` also covers toned images (sepia, duotone, tinted sketches), which score high on
   Hasler-Suesstrunk because of their constant hue: their chroma is a function of luminance, so the
   residual of a quadratic fit of (R-G, (R+G)/2-B) on luminance is ~0 (``tint_residual``).
9. ``blurry``: variance of the OpenCV Laplacian of the gray image, measured after resizing so the
   longer side is ``analysis_side`` pixels (so the number does not depend on resolution), below
   ``min_sharpness``.

Kept images go directly in OUTPUT as ``<input stem>_<8 hex of sha1(relative input path)>.jpg|png``:
JPEG inputs stay JPEG (their bytes are copied unchanged when nothing had to be corrected, else
re-encoded at quality 95, 4:4:4), everything else becomes PNG.  Metadata sidecars (``<file>.json``:
kind, source, ...) are carried over with what clean measured added under ``clean``: the source's
size, format, mode and JPEG quality (dedup keeps the copy with the most source pixels, then the
best-quality one).  Inputs are only read.

Files are judged in worker processes (``workers``); a worker that dies on a file (killed for memory
on a huge image) makes that file a ``worker_died`` record, retried on the next run, never a hang.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from data_prep import pool
from data_prep.report import FileRecord, StageRun, load_sidecar, run_stage, write_sidecar

STAGE = 'clean'

DEFAULTS: dict = {
    'min_side': 256,              # px; shorter side below this is rejected ('too_small')
    'min_bytes': 40 * 1024,       # bytes; smaller files are rejected ('small_file'); 0 disables
    'max_pixels': 89_478_485,     # width*height above this is a decompression bomb (Pillow's default limit)
    'reject_monochrome': True,    # reject grayscale / sepia / sketches
    'min_colourfulness': 10.0,    # Hasler-Suesstrunk M; gray / pencil = 0, skimage colour photos 13.6-110
    'min_tint_residual': 6.0,     # chroma not explained by luminance; sepia / duotone 0.4-3.8, colour photos >= 12
    'reject_blurry': True,        # reject out-of-focus / upscaled images
    'min_sharpness': 15.0,        # Laplacian variance at analysis_side; see benchmarks + tests for the scale
    'analysis_side': 512,         # px, longer side used for colourfulness / sharpness
    'output_format': 'keep',      # 'keep' (JPEG stays JPEG, rest PNG), 'jpeg' or 'png'
    'jpeg_quality': 95,
    'copy_unchanged_jpeg': True,  # JPEG needing no fix (RGB/YCbCr, no rotation, no ICC): copy the bytes
    'png_compress_level': 1,      # zlib level of PNG outputs (intermediate files: speed over size)
    'workers': 0,                 # processes; 0 = os.cpu_count(); small inputs run in-process
}
VOLATILE = ('workers',)           # settings that do not change any output (a change redoes nothing)

_TEXT_SNIFF = (b'<!doctype', b'<html', b'<?xml', b'<head', b'<body', b'{', b'[')


# ------------------------------------------------------------------------------------------- metrics

def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk colourfulness M of an RGB uint8/float image (0 = gray; ~33 moderately colourful)."""
    x = np.asarray(rgb, dtype=np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mean = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(std + 0.3 * mean)


def tint_residual(rgb: np.ndarray) -> float:
    """Chroma spread left after a per-image quadratic fit of the opponent channels on luminance.

    ~0 for gray, sepia, duotone and any image whose colour is a function of brightness (toned
    monochrome); large for real colour images (measured: skimage colour samples 12-130)."""
    x = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    l1 = (0.299 * r + 0.587 * g + 0.114 * b) * (1.0 / 255.0)
    l2 = l1 * l1
    # least squares on [1, l, l^2] through its 3x3 normal equations built from elementwise sums: an
    # N x 3 lstsq / BLAS dot was 10-40x slower (SVD, and BLAS threads fighting the worker processes)
    s1, s2, s3, s4 = l1.sum(), l2.sum(), (l1 * l2).sum(), (l2 * l2).sum()
    gram = np.array([[float(len(l1)), s1, s2], [s1, s2, s3], [s2, s3, s4]])
    total = 0.0
    for c in (r - g, 0.5 * (r + g) - b):
        rhs = np.array([c.sum(), (c * l1).sum(), (c * l2).sum()])
        k = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        total += float((c - (k[0] + k[1] * l1 + k[2] * l2)).var())
    return float(np.sqrt(total))


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of the gray image (OpenCV); low for blurry images."""
    import cv2
    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F, ksize=1).var())


def analysis_view(im, side: int):
    """RGB image resized (area filter) so its longer side is ``side`` px (never upsampled), as uint8 array."""
    from PIL import Image
    w, h = im.size
    s = side / max(w, h)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ decoding

@contextlib.contextmanager
def _pixel_limit(max_pixels: int):
    """Switch off Pillow's global bomb check while we open a header (restored afterwards).

    Opening only parses the header, so this is safe; ``_judge`` then compares width x height with
    ``max_pixels`` itself before anything is decoded, giving one uniform reason at any limit (Pillow
    would warn at its limit and raise only at twice it). Should a plugin still complain, the warning
    is an error and is reported as a bomb too."""
    from PIL import Image
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _sniff_not_image(head: bytes) -> str:
    """Reason for a file Pillow cannot identify: 'html' for markup error pages, else 'not_an_image'."""
    s = head.lstrip().lower()
    if s.startswith((b'<!doctype html', b'<html', b'<head', b'<body')) or b'<html' in s[:1024]:
        return 'html: an HTML page, not an image'
    if s.startswith(_TEXT_SNIFF):
        return 'not_an_image: markup/JSON text'
    printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in head[:4096])
    if head and printable / min(len(head), 4096) > 0.95:
        return 'not_an_image: text file'
    return 'not_an_image: unknown format'


def _to_8bit_gray(arr: np.ndarray) -> np.ndarray:
    """Integer / float single-channel data (16-bit PNG/TIFF, mode I or F) scaled to uint8."""
    a = arr.astype(np.float64)
    if arr.dtype.kind == 'f':
        hi = 1.0 if a.max(initial=0) <= 1.0 else 255.0 if a.max(initial=0) <= 255 else a.max()
    else:
        m = a.max(initial=0)
        hi = 255.0 if m <= 255 else 65535.0 if m <= 65535 else m
    return np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)


def to_rgb(im):
    """Any Pillow image -> 8-bit RGB: ICC -> sRGB, alpha composited on white, 16-bit scaled, CMYK converted.

    Returns ``(rgb_image, notes)`` where notes lists what was changed (for the report)."""
    from PIL import Image
    notes: list[str] = []
    icc = im.info.get('icc_profile')
    if icc and im.mode in ('RGB', 'RGBA', 'CMYK', 'L', 'LA'):
        try:  # colour-manage to sRGB so CMYK / wide-gamut files look like they do in a browser
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile('sRGB')
            out_mode = 'RGBA' if im.mode in ('RGBA', 'LA') else 'RGB'
            im = ImageCms.profileToProfile(im.convert('RGBA') if im.mode == 'LA' else im, src, dst,
                                           outputMode=out_mode)
            notes.append('icc->srgb')
        except Exception:  # broken profile: fall back to Pillow's plain conversion below
            notes.append('icc_ignored')
    mode = im.mode
    if mode == 'P' or mode == 'PA':
        im = im.convert('RGBA' if (mode == 'PA' or 'transparency' in im.info) else 'RGB')
        notes.append('palette')
    elif mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        im = Image.fromarray(_to_8bit_gray(np.asarray(im)), 'L')
        notes.append('high_bit_depth')
    elif mode == '1':
        im = im.convert('L')
    if im.mode == 'LA' or im.mode == 'La':
        im = im.convert('RGBA')
    if im.mode in ('RGBA', 'RGBa'):
        bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
        bg.alpha_composite(im.convert('RGBA'))
        im = bg.convert('RGB')
        notes.append('alpha_on_white')
    if im.mode != 'RGB':
        notes.append(f'{im.mode.lower()}->rgb')
        im = im.convert('RGB')
    return im, notes


def output_name(path: Path, input_dir: Path, ext: str) -> str:
    """Deterministic unique output name: input stem + 8 hex of sha1 of the path relative to the input dir."""
    try:
        rel = Path(path).resolve().relative_to(Path(input_dir).resolve()).as_posix()
    except ValueError:
        rel = Path(path).resolve().as_posix()
    stem = ''.join(c if (c.isalnum() or c in '-_') else '_' for c in Path(path).stem)[:80] or 'image'
    return f'{stem}_{hashlib.sha1(rel.encode()).hexdigest()[:8]}{ext}'


def _atomic_save(write, dest: Path) -> None:
    """Write via ``write(tmp_path)`` then rename, so a crash never leaves a half-written kept image."""
    fd, tmp = tempfile.mkstemp(prefix='.' + dest.name + '.', suffix='.tmp', dir=str(dest.parent))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def judge(path: Path, input_dir: Path, output_dir: Path, cfg: dict) -> FileRecord:
    """Decide about one file and, if kept, write its RGB output + sidecar. Never raises for bad files:
    an unexpected exception becomes a rejected record carrying its traceback (and a warning)."""
    try:
        return _judge(Path(path), Path(input_dir), Path(output_dir), cfg)
    except Exception as e:  # noqa: BLE001 -- one file must not stop 1e5; the traceback is kept
        import traceback
        return FileRecord(str(path), 'rejected', f'error: {type(e).__name__}: {e}'[:300],
                          extra={'traceback': traceback.format_exc(),
                                 'warnings': [f'unexpected {type(e).__name__} in clean (traceback in report.json)']})


def _judge(path: Path, input_dir: Path, output_dir: Path, cfg: dict) -> FileRecord:
    from PIL import Image, ImageOps, UnidentifiedImageError
    from data_prep.dedup import jpeg_quality
    st = path.stat()
    base_extra: dict = {'bytes': st.st_size}
    side, problems = load_sidecar(path)  # an unreadable one: still judged, the record says so
    if problems:
        base_extra['warnings'] = problems
    for k in ('kind', 'source'):
        if k in side:
            base_extra[k] = side[k]

    def reject(reason: str, **more) -> FileRecord:
        return FileRecord(str(path), 'rejected', reason, extra={**base_extra, **more})

    if st.st_size == 0:
        return reject('empty: 0 bytes')
    with open(path, 'rb') as f:
        head = f.read(4096)
    with _pixel_limit(cfg['max_pixels']):
        try:
            im = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return reject(f'decompression_bomb: {e}'[:200])
        except UnidentifiedImageError:
            return reject(_sniff_not_image(head))
        except (OSError, ValueError, SyntaxError) as e:
            return reject(f'not_an_image: {type(e).__name__}: {e}'[:200])
        with im:
            w, h = im.size
            fmt = im.format
            more = {'width': w, 'height': h, 'format': fmt, 'mode': im.mode}
            if cfg['max_pixels'] and w * h > cfg['max_pixels']:
                return reject(f'decompression_bomb: {w}x{h} = {w * h} pixels > {cfg["max_pixels"]}', **more)
            if min(w, h) < cfg['min_side']:
                return reject(f'too_small: {w}x{h}, shorter side < {cfg["min_side"]}', **more)
            if cfg['min_bytes'] and st.st_size < cfg['min_bytes']:
                return reject(f'small_file: {st.st_size} bytes < {cfg["min_bytes"]}', **more)
            orientation = im.getexif().get(0x0112, 1) if hasattr(im, 'getexif') else 1
            had_icc = bool(im.info.get('icc_profile'))
            src_mode = im.mode
            quality = jpeg_quality(im)
            fmt_out = cfg['output_format']
            as_jpeg = fmt_out == 'jpeg' or (fmt_out == 'keep' and fmt in ('JPEG', 'MPO'))
            unchanged = (fmt == 'JPEG' and as_jpeg and cfg['copy_unchanged_jpeg']
                         and src_mode in ('RGB', 'YCbCr') and orientation in (1, None) and not had_icc)
            if unchanged:
                # the bytes will be copied, pixels are only measured: let libjpeg decode at 1/2..1/8
                # scale (all entropy-coded data is still read, so truncation is still detected)
                sc = cfg['analysis_side'] / max(w, h)
                if sc < 1:
                    im.draft('RGB', (max(1, int(np.ceil(w * sc))), max(1, int(np.ceil(h * sc)))))
            try:
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                return reject(f'decompression_bomb: {e}'[:200], **more)
            except MemoryError:
                return reject(f'out_of_memory: decoding {w}x{h} failed', **more)
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                msg = str(e)
                kind = 'truncated' if ('truncated' in msg or isinstance(e, EOFError)) else 'decode_error'
                return reject(f'{kind}: {msg}'[:200], **more)
            rgb = ImageOps.exif_transpose(im)
            rgb, notes = to_rgb(rgb)
    if orientation not in (1, None):
        notes.append(f'exif_orientation_{orientation}')
    view = analysis_view(rgb, cfg['analysis_side'])
    m = colourfulness(view)
    tr = tint_residual(view)
    s = sharpness(view)
    more.update({'colourfulness': round(m, 3), 'tint_residual': round(tr, 3), 'sharpness': round(s, 3),
                 'notes': notes})
    if not unchanged:  # a draft decode is smaller than the file; the header size is the truth then
        more.update({'width': rgb.width, 'height': rgb.height})
    if cfg['reject_monochrome'] and m < cfg['min_colourfulness']:
        return reject(f'monochrome: colourfulness {m:.1f} < {cfg["min_colourfulness"]}', **more)
    if cfg['reject_monochrome'] and tr < cfg['min_tint_residual']:
        return reject(f'monochrome: toned, tint residual {tr:.1f} < {cfg["min_tint_residual"]}', **more)
    if cfg['reject_blurry'] and s < cfg['min_sharpness']:
        return reject(f'blurry: laplacian variance {s:.1f} < {cfg["min_sharpness"]}', **more)

    dest = output_dir / output_name(path, input_dir, '.jpg' if as_jpeg else '.png')
    if unchanged:
        _atomic_save(lambda t: shutil.copyfile(path, t), dest)
    elif as_jpeg:
        _atomic_save(lambda t: rgb.save(t, 'JPEG', quality=int(cfg['jpeg_quality']), subsampling=0,
                                        optimize=True), dest)
    else:
        _atomic_save(lambda t: rgb.save(t, 'PNG', compress_level=int(cfg['png_compress_level'])), dest)
    meta = {**side, **{k: v for k, v in base_extra.items() if k in ('kind', 'source')},
            'clean': {'input': str(path), 'width': more['width'], 'height': more['height'],
                      # what the source was: dedup keeps the copy with most pixels, then best quality
                      'format': fmt, 'mode': src_mode, 'jpeg_quality': quality,
                      'colourfulness': more['colourfulness'], 'tint_residual': more['tint_residual'],
                      'sharpness': more['sharpness'], 'notes': notes, 'copied': unchanged}}
    write_sidecar(dest, meta)
    return FileRecord(str(path), 'kept', None, output=str(dest),
                      extra={**base_extra, **more, 'jpeg_quality': quality, 'copied': unchanged})


def _init_worker() -> None:
    """One thread per worker process: the pool already uses every core; nested OpenCV threads only contend."""
    import cv2
    cv2.setNumThreads(1)


def _work(args) -> dict:
    path, input_dir, output_dir, cfg = args
    return judge(path, input_dir, output_dir, cfg).to_json()


def check_settings(cfg: dict) -> None:
    """Reject settings no file could be judged with."""
    from data_prep.config import DataPrepError
    if cfg['output_format'] not in ('keep', 'jpeg', 'png'):
        raise DataPrepError('clean settings', f"output_format {cfg['output_format']!r} must be keep, jpeg or png")


def process(run: StageRun) -> dict:
    """Judge every input that has no up-to-date record (new, changed, or judged with other settings)."""
    cfg = run.settings
    todo = [p for p in run.inputs if run.up_to_date(p) is None]
    jobs = [(p, run.input_dir, run.output_dir, cfg) for p in todo]
    for job, row in run.work(_work, jobs, cfg['workers'], initializer=_init_worker):
        run.add(run.died(job[0], row) if isinstance(row, pool.WorkerDied) else FileRecord.from_json(row))
    recs = run.report.records()
    reasons: dict[str, int] = {}
    for r in recs:
        if r.status == 'rejected':
            key = (r.reason or 'unknown').split(':', 1)[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {'reasons': reasons,
            'by_kind': {k: sum(r.status == 'kept' and r.extra.get('kind') == k for r in recs)
                        for k in ('photo', 'painting')}}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None) -> dict:
    """Clean every input of ``input_dir`` into ``output_dir`` (see the module doc); returns the summary."""
    return run_stage(sys.modules[__name__], input_dir, output_dir, cfg)
