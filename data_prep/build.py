"""Stage `build`: images (+ sidecars) -> a TFDS dataset of TFRecord shards, with a photo_ratio mix.

Output: ``OUTPUT/<name>/<version>/`` (dataset_info.json, features.json, TFRecord shards of split
``train``), readable with ``tfds.builder_from_directory(OUTPUT/<name>/<version>)``. Features:

- ``image``: tfds.features.Image(shape=(R, R, 3), encoding_format='jpeg'). A JPEG input that is
  already RGB, R x R is stored byte for byte (no second lossy encode); anything else is centre-
  cropped to a square, resized with Lanczos and encoded as JPEG quality ``jpeg_quality``.
- ``label``: ClassLabel over ``categories`` (default: [category]); per image the sidecar's
  ``category`` or the configured category.
- ``kind``: ClassLabel ['painting', 'photo'] from the sidecar (``default_kind`` when absent).
- ``source``: the sidecar's source URL when known, else the input path relative to INPUT.

``photo_ratio`` (None = keep all): the fraction photos / (photos + paintings) wanted. The stage
keeps as many images as possible: all images of the kind that is short, and a deterministic
seeded subset of the other kind (ranked by a hash of seed and relative path, so adding a file
never reshuffles the others). Excluded images are report records with status 'rejected', reason
'photo_ratio'. A ratio strictly between 0 and 1 needs both kinds: with no photo (or no painting) the
stage stops with an error instead of writing a dataset that ignores the ratio.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

from data_prep.config import DataPrepError, dataset_name
from data_prep.report import FileRecord, StageRun, load_sidecar, progress, run_stage

STAGE = 'build'

DEFAULTS: dict = {
    'name': None,            # dataset name (snake_case); default: category, else the config / folder name
    'category': None,        # this dataset's category label; default: name
    'categories': None,      # all label names (ClassLabel); default: [category]
    'version': '1.0.0',
    'resolution': 512,       # every stored image is resolution x resolution x 3
    'jpeg_quality': 95,
    'photo_ratio': None,     # float in [0, 1] or None (keep all)
    'seed': 0,               # photo_ratio subsample seed
    'default_kind': 'painting',  # kind of images without a sidecar kind
}

KINDS = ['painting', 'photo']


def ratio_counts(n_photo: int, n_painting: int, ratio: float | None) -> tuple[int, int]:
    """(photos, paintings) to keep: the most images whose photo fraction is ``ratio``
    (rounded to the nearest whole image)."""
    if ratio is None:
        return n_photo, n_painting
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f'photo_ratio must be in [0, 1] or None, got {ratio}')
    if ratio == 0.0:
        return 0, n_painting
    if ratio == 1.0:
        return n_photo, 0
    # photos limited by paintings: p = r/(1-r) * q ; paintings limited by photos: q = (1-r)/r * p
    p_from_q = round(ratio / (1 - ratio) * n_painting)
    if p_from_q <= n_photo:
        return p_from_q, n_painting
    return n_photo, min(n_painting, round((1 - ratio) / ratio * n_photo))


def rank_key(seed: int, rel: str) -> str:
    """Deterministic pseudo-random rank of a file for subsampling."""
    return hashlib.sha256(f'{seed}:{rel}'.encode()).hexdigest()


def _kind_of(side: dict, default: str) -> str:
    k = str(side.get('kind') or default).lower()
    return {'paintings': 'painting', 'art': 'painting', 'photos': 'photo', 'photograph': 'photo'}.get(k, k)


def _source_of(side: dict, rel: str) -> str:
    for key in ('source_url', 'source', 'url', 'page_url'):
        if side.get(key):
            return str(side[key])
    return rel


def jpeg_bytes(path: Path, resolution: int, quality: int) -> bytes:
    """The JPEG bytes stored for one input (see module doc); raises on undecodable input."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        if (im.format == 'JPEG' and im.mode == 'RGB' and im.size == (resolution, resolution)
                and im.getexif().get(0x0112, 1) == 1):
            return path.read_bytes()
        im = ImageOps.exif_transpose(im)
        if im.mode in ('RGBA', 'LA', 'P'):
            im = im.convert('RGBA')
            bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert('RGB')
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != resolution:
            im = im.resize((resolution, resolution), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format='JPEG', quality=int(quality))
        return buf.getvalue()


def _adhoc_builder_cls():
    """tfds' AdhocBuilder under a one-part module name.

    Why: for builders defined in a package module, tfds 4.9 looks for a checksums file next to the
    builder's source and, on that path, touches ``importlib_resources`` (a package it does not
    declare and that is not installed here). A builder whose ``__module__`` has a single part skips
    that lookup; we download nothing, so there are no checksums to find anyway."""
    from tensorflow_datasets.core.dataset_builders.adhoc_builder import AdhocBuilder

    class DataPrepBuilder(AdhocBuilder, skip_registration=True):
        """AdhocBuilder for data_prep's build stage."""

    DataPrepBuilder.__module__ = 'data_prep_build'
    return DataPrepBuilder


def check_settings(cfg: dict) -> None:
    """A photo_ratio outside [0, 1] is an error before anything is read."""
    r = cfg['photo_ratio']
    if r is not None and not (isinstance(r, (int, float)) and 0.0 <= float(r) <= 1.0):
        raise DataPrepError('build settings', f'photo_ratio must be in [0, 1] or None, got {r!r}')


def process(run: StageRun) -> dict:
    """Write the TFDS dataset of the inputs (see module doc)."""
    from PIL import Image
    cfg, input_dir, output_dir = run.settings, run.input_dir, run.output_dir
    name = dataset_name(cfg, input_dir=input_dir)
    category = str(cfg['category'] or cfg['name'] or name)
    categories = [str(c) for c in (cfg['categories'] or [category])]
    res, version = int(cfg['resolution']), str(cfg['version'])
    files = run.inputs

    # 1) metadata + validity (cheap header read; the full decode happens while writing)
    items, bad, notes = [], {}, {}
    for f in progress(files, total=len(files), desc='build: scanning'):
        rel = f.relative_to(input_dir).as_posix() if f.is_relative_to(input_dir) else f.name
        side, problems = load_sidecar(f)
        if problems:
            notes[str(f)] = problems
        kind = _kind_of(side, cfg['default_kind'])
        cat = str(side.get('category') or category)
        try:
            with Image.open(f) as im:
                im.verify()
        except Exception as e:  # noqa: BLE001 -- a bad file is a record, never a crash
            bad[str(f)] = f'unreadable image: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}'
            continue
        if kind not in KINDS:
            bad[str(f)] = f'unknown kind {kind!r} (want one of {KINDS})'
            continue
        if cat not in categories:
            bad[str(f)] = f'category {cat!r} not in {categories}'
            continue
        items.append({'path': f, 'rel': rel, 'kind': kind, 'category': cat, 'source': _source_of(side, rel)})

    # 2) photo_ratio subsample
    photos = sorted((it for it in items if it['kind'] == 'photo'), key=lambda it: rank_key(cfg['seed'], it['rel']))
    paints = sorted((it for it in items if it['kind'] == 'painting'), key=lambda it: rank_key(cfg['seed'], it['rel']))
    ratio = cfg['photo_ratio']
    if not items:
        raise DataPrepError(input_dir, f'no usable image to build a dataset from ({len(files)} inputs, '
                                       f'{len(bad)} unreadable or unusable)')
    if ratio is not None and 0.0 < float(ratio) < 1.0 and (not photos or not paints):
        raise DataPrepError(input_dir, f'photo_ratio {ratio} needs photos and paintings, found {len(photos)} '
                                       f'photos and {len(paints)} paintings (set build.photo_ratio=None to keep all)')
    n_p, n_q = ratio_counts(len(photos), len(paints), ratio)
    chosen = sorted(photos[:n_p] + paints[:n_q], key=lambda it: it['rel'])
    dropped = photos[n_p:] + paints[n_q:]

    # 3) write (skipped when the same selection and settings were already built: idempotent)
    fingerprint = hashlib.sha256(json.dumps(
        [[it['rel'], it['kind'], it['category'], it['source'], it['path'].stat().st_size,
          it['path'].stat().st_mtime_ns] for it in chosen]
        + [name, version, res, cfg['jpeg_quality'], categories], sort_keys=True).encode()).hexdigest()
    ds_dir = output_dir / name / version
    stamp = output_dir / name / f'.{version}.fingerprint'
    encode_errors: dict[str, str] = {}
    reused = ds_dir.is_dir() and stamp.is_file() and stamp.read_text().strip() == fingerprint
    if not reused:
        import tensorflow_datasets as tfds
        features = tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(res, res, 3), encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(names=categories),
            'kind': tfds.features.ClassLabel(names=KINDS),
            'source': tfds.features.Text(),
        })
        # Encoding failures discovered while writing must not abort the build: pre-encode with a
        # progress bar and leave failures out (they become records).
        examples = []
        for it in progress(chosen, total=len(chosen), desc='build: encoding'):
            try:
                img = jpeg_bytes(it['path'], res, cfg['jpeg_quality'])
            except Exception as e:  # noqa: BLE001
                encode_errors[str(it['path'])] = f'unreadable image: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}'
                continue
            examples.append((it['rel'], {'image': img, 'label': it['category'], 'kind': it['kind'],
                                         'source': it['source']}))
        if not examples:
            raise DataPrepError(input_dir, f'none of the {len(chosen)} chosen images could be encoded')
        tmp_root = output_dir / f'.tmp_build_{name}'
        shutil.rmtree(tmp_root, ignore_errors=True)
        builder = _adhoc_builder_cls()(
            name=name, version=version, features=features, split_datasets={'train': examples},
            data_dir=str(tmp_root),
            description=f'data_prep build of {input_dir} ({len(examples)} images, photo_ratio '
                        f'{cfg["photo_ratio"]})')
        builder.download_and_prepare()
        built = tmp_root / name / version
        if not built.is_dir():  # tfds versions differ on where the config dir goes
            found = [p.parent for p in tmp_root.rglob('dataset_info.json')]
            if not found:
                raise RuntimeError(f'{tmp_root}: TFDS wrote no dataset_info.json')
            built = found[0]
        shutil.rmtree(ds_dir, ignore_errors=True)
        ds_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), str(ds_dir))
        shutil.rmtree(tmp_root, ignore_errors=True)
        stamp.write_text(fingerprint)
        run.processed = len(examples)
    else:
        encode_errors = {r.path: r.reason for r in run.report.records()
                         if r.status == 'rejected' and r.reason and r.reason.startswith('unreadable')
                         and r.path not in bad}

    # 4) records
    for f, why in {**bad, **encode_errors}.items():
        run.add(FileRecord(path=f, status='rejected', reason=why, extra={'warnings': notes.get(f, [])}), count=False)
    for it in dropped:
        run.add(FileRecord(path=str(it['path']), status='rejected', reason='photo_ratio',
                           extra={'kind': it['kind'], 'source': it['source'], 'warnings': notes.get(str(it['path']), [])}),
                count=False)
    n_kept = {'photo': 0, 'painting': 0}
    for it in chosen:
        if str(it['path']) in encode_errors:
            continue
        n_kept[it['kind']] += 1
        run.add(FileRecord(path=str(it['path']), status='kept', output=str(ds_dir.resolve()),
                           extra={'kind': it['kind'], 'category': it['category'], 'source': it['source'],
                                  'warnings': notes.get(str(it['path']), [])}), count=False)
    total = n_kept['photo'] + n_kept['painting']
    return {'dataset': str(ds_dir.resolve()), 'name': name, 'version': version, 'resolution': res,
            'categories': categories, 'examples': total, 'photos': n_kept['photo'],
            'paintings': n_kept['painting'], 'photo_fraction': round(n_kept['photo'] / total, 4) if total else None,
            'photo_ratio': cfg['photo_ratio'], 'dropped_for_ratio': len(dropped),
            'unreadable': len(bad) + len(encode_errors), 'reused_existing': bool(reused)}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None) -> dict:
    """Write the TFDS dataset for input_dir into output_dir (see module doc); returns the summary."""
    return run_stage(sys.modules[__name__], input_dir, output_dir, cfg)
