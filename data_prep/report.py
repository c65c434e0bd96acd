"""Per-stage bookkeeping shared by every data_prep stage.

Each stage writes ``OUTPUT/report.json`` = ``{"stage": ..., "files": [record, ...], "summary": {...}}``
with one record per input file (kept / rejected / duplicate, with a reason), plus PNG contact sheets in
``OUTPUT/report/`` so a human can eyeball what was kept and why things were rejected.  The report is
also the resume journal: a stage re-run skips inputs that already have a record whose output exists.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import field
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

REPORT_NAME = 'report.json'
REPORT_DIR = 'report'
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.jfif')
STATUSES = ('kept', 'rejected', 'duplicate')


@dataclasses.dataclass
class FileRecord:
    """What a stage decided about one input file."""
    path: str                          # input path (absolute or as given)
    status: str                        # 'kept' | 'rejected' | 'duplicate'
    reason: str | None = None
    output: str | None = None          # absolute output path or None
    duplicate_of: str | None = None
    extra: dict = field(default_factory=dict)  # stage specific: kind, source, face box, hash, ...

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f'FileRecord {self.path}: unknown status {self.status!r}')

    def to_json(self) -> dict:
        """Plain-JSON form (``extra`` values that are not JSON are stringified)."""
        d = dataclasses.asdict(self)
        d['extra'] = json.loads(json.dumps(self.extra, default=str))
        return d

    @classmethod
    def from_json(cls, d: dict) -> 'FileRecord':
        """Inverse of :meth:`to_json`; unknown keys are ignored."""
        return cls(path=str(d['path']), status=str(d['status']), reason=d.get('reason'),
                   output=d.get('output'), duplicate_of=d.get('duplicate_of'),
                   extra=dict(d.get('extra') or {}))


def _atomic_write_json(path: Path, obj: Any, fsync: bool = True) -> None:
    """Write JSON to a temp file in the same folder then rename, so a crash never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + path.name + '.', suffix='.tmp', dir=str(path.parent))
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=1, default=str)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StageReport:
    """``OUTPUT/report.json`` for one stage; loads an existing one so a stage can resume."""

    AUTOSAVE_EVERY = 50
    AUTOSAVE_SECONDS = 5.0

    def __init__(self, output_dir: Path, stage: str, records: dict[str, FileRecord] | None = None,
                 summary: dict | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.stage = stage
        self._records: dict[str, FileRecord] = dict(records or {})
        self.summary: dict = dict(summary or {})
        self._unsaved = 0
        self._last_save = time.monotonic()

    @property
    def path(self) -> Path:
        """Location of report.json."""
        return self.output_dir / REPORT_NAME

    @classmethod
    def open(cls, output_dir: str | Path, stage: str) -> 'StageReport':
        """Load ``output_dir/report.json`` if present (resume), else start empty; creates output_dir.

        A report that cannot be parsed is moved aside (``report.json.corrupt``), never silently lost.
        """
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        rp = out / REPORT_NAME
        records: dict[str, FileRecord] = {}
        summary: dict = {}
        if rp.exists():
            try:
                data = json.loads(rp.read_text())
                rows = data['files'] if isinstance(data, dict) else data
                parsed = [FileRecord.from_json(row) for row in rows]
            except Exception as e:  # corrupt / truncated json: keep it for inspection, start over
                os.replace(rp, rp.with_name(REPORT_NAME + '.corrupt'))
                print(f'data-prep: warning: {rp} unreadable ({type(e).__name__}); moved aside, starting fresh',
                      file=sys.stderr)
                data, parsed = {}, []
            if isinstance(data, dict):
                old_stage = data.get('stage')
                if old_stage and old_stage != stage:
                    raise ValueError(f'{rp}: report belongs to stage {old_stage!r}, not {stage!r}; '
                                     f'use another output folder')
                summary = dict(data.get('summary') or {})
            records = {rec.path: rec for rec in parsed}
        return cls(out, stage, records, summary)

    def done(self, path: str) -> bool:
        """True when this input already has a record."""
        return str(path) in self._records

    def get(self, path: str) -> FileRecord | None:
        """The record for ``path`` or None."""
        return self._records.get(str(path))

    def add(self, rec: FileRecord) -> None:
        """Add or replace the record for ``rec.path``; autosaves every ~50 adds or 5 s."""
        rec.path = str(rec.path)
        self._records[rec.path] = rec
        self._unsaved += 1
        if (self._unsaved >= self.AUTOSAVE_EVERY
                or time.monotonic() - self._last_save >= self.AUTOSAVE_SECONDS):
            self.save()

    def remove(self, path: str) -> None:
        """Forget the record of ``path`` (e.g. its output vanished and it must be redone)."""
        self._records.pop(str(path), None)

    def records(self) -> list[FileRecord]:
        """All records in insertion order."""
        return list(self._records.values())

    def counts(self) -> dict[str, int]:
        """Number of records per status, plus per rejection reason (``rejected:<reason head>``)."""
        c: dict[str, int] = {s: 0 for s in STATUSES}
        for r in self._records.values():
            c[r.status] = c.get(r.status, 0) + 1
            if r.status == 'rejected':
                key = 'rejected:' + _reason_key(r.reason)
                c[key] = c.get(key, 0) + 1
        return c

    def save(self, summary: dict | None = None) -> Path:
        """Atomically write ``{"stage", "files", "summary"}``; ``summary`` (if given) is merged in."""
        if summary is not None:
            self.summary.update(summary)
        obj = {'stage': self.stage, 'files': [r.to_json() for r in self._records.values()],
               'summary': self.summary}
        _atomic_write_json(self.path, obj)
        self._unsaved = 0
        self._last_save = time.monotonic()
        return self.path


def _reason_key(reason: str | None) -> str:
    """Short grouping key of a reason: text before the first ':' or '(' (``'too_small: 100x80'`` -> ``too_small``)."""
    if not reason:
        return 'unknown'
    head = reason.split(':', 1)[0].split('(', 1)[0].strip()
    return head or 'unknown'


def output_exists(rec: FileRecord | None, output_dir: Path) -> bool:
    """Whether a record's output file (if it has one) is still on disk; records without output count as done."""
    if rec is None:
        return False
    if not rec.output:
        return True
    p = Path(rec.output)
    if not p.is_absolute():
        p = Path(output_dir) / p
    return p.exists()


# ----------------------------------------------------------------------------------------------- listing

def _is_sidecar_or_meta(p: Path) -> bool:
    name = p.name
    return (name.startswith('.') or name.endswith('.json') or name.endswith('.tmp')
            or name.endswith('.sqlite3') or name.endswith('.corrupt')
            or name.endswith('.part'))  # gallery-dl's unfinished downloads


def iter_images(input_dir: Path) -> list[Path]:
    """Sorted recursive list of candidate input files.

    Every regular file counts (a stage must judge non-images too, as rejects), except hidden files and
    folders, ``report.json``/JSON sidecars, the ``report/`` contact-sheet folder, download archives and
    unfinished ``.part`` downloads.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f'{root}: input folder does not exist')
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        # prune: hidden dirs everywhere, the report/ dir only at top level (a stage's own output)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith('.') and not (rel == Path('.') and d == REPORT_DIR))
        for fn in filenames:
            p = Path(dirpath) / fn
            if _is_sidecar_or_meta(p) or not p.is_file():
                continue
            out.append(p)
    return sorted(out)


def stage_inputs(input_dir: Path, output_dir: Path) -> list[Path]:
    """``iter_images(input_dir)`` without the stage's own outputs when OUTPUT lies inside INPUT."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    files = iter_images(input_dir)
    if output_dir.resolve().is_relative_to(input_dir.resolve()):
        out = output_dir.resolve()
        files = [f for f in files if not f.resolve().is_relative_to(out)]
    return files


def read_sidecar(path: Path) -> dict:
    """Metadata JSON next to an image (``<image>.json``: source url, kind, ...); ``{}`` if absent or unreadable."""
    side = Path(str(path) + '.json')
    if not side.is_file():
        return {}
    try:
        d = json.loads(side.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def write_sidecar(path: Path, meta: dict) -> Path:
    """Write ``<path>.json`` (atomic) holding ``meta``; returns the sidecar path."""
    side = Path(str(path) + '.json')
    _atomic_write_json(side, meta, fsync=False)  # per-image file: rename-atomic is enough, fsync is slow
    return side


def progress(iterable: Iterable, total: int | None = None, desc: str = '') -> tqdm:
    """tqdm progress bar on stderr (quiet when stderr is not a terminal and DATA_PREP_QUIET is set)."""
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True,
                disable=bool(os.environ.get('DATA_PREP_QUIET')), leave=False)


# ------------------------------------------------------------------------------------------ contact sheets

_THUMB = 128
_LABEL_H = 30


def _thumb(rec: FileRecord):
    """A square RGB thumbnail of the record's output (or input); a grey tile when it cannot be read."""
    from PIL import Image, ImageOps
    for cand in (rec.output, rec.path):
        if not cand or not os.path.isfile(cand):
            continue
        try:
            with Image.open(cand) as im:
                im.draft('RGB', (_THUMB * 2, _THUMB * 2))  # fast JPEG downscale while decoding
                im = ImageOps.exif_transpose(im)
                im = im.convert('RGB')
                im.thumbnail((_THUMB, _THUMB))
                tile = Image.new('RGB', (_THUMB, _THUMB), (40, 40, 40))
                tile.paste(im, ((_THUMB - im.width) // 2, (_THUMB - im.height) // 2))
                return tile
        except Exception:  # non-images, truncated files, bombs: show a placeholder
            continue
    return Image.new('RGB', (_THUMB, _THUMB), (90, 90, 90))


def _sheet(recs: list[FileRecord], title: str, label_of) -> 'Image.Image':
    from PIL import Image, ImageDraw, ImageFont
    cols = min(8, max(1, len(recs)))
    rows = (len(recs) + cols - 1) // cols
    cell_w, cell_h = _THUMB + 8, _THUMB + _LABEL_H + 8
    sheet = Image.new('RGB', (cols * cell_w + 8, rows * cell_h + 30), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((8, 8), title, fill=(0, 0, 0), font=font)
    for i, r in enumerate(recs):
        x, y = 8 + (i % cols) * cell_w, 30 + (i // cols) * cell_h
        sheet.paste(_thumb(r), (x, y))
        label = label_of(r)
        # two short lines under the thumbnail; long reasons are cut, the full text is in report.json
        lines = [label[:22], label[22:44]]
        for j, line in enumerate(lines):
            if line:
                draw.text((x, y + _THUMB + 2 + 12 * j), line, fill=(0, 0, 0), font=font)
    return sheet


def write_contact_sheets(records: list[FileRecord], report_dir: Path, title: str,
                         max_per_sheet: int = 48) -> list[Path]:
    """PNG contact sheets of kept and of rejected/duplicate examples, each labelled, into ``report_dir``.

    Writes ``kept.png`` (first ``max_per_sheet`` kept, labelled by name) and ``rejected.png`` (examples
    spread over all reasons, labelled by reason; duplicates labelled ``dup of <name>``). Returns the paths.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kept = [r for r in records if r.status == 'kept'][:max_per_sheet]
    if kept:
        def kept_label(r: FileRecord) -> str:
            kind = r.extra.get('kind') if isinstance(r.extra, dict) else None
            return (f'[{kind}] ' if kind else '') + Path(r.path).name
        p = report_dir / 'kept.png'
        _sheet(kept, f'{title}: kept ({sum(r.status == "kept" for r in records)} total)', kept_label).save(p)
        written.append(p)
    bad = [r for r in records if r.status != 'kept']
    if bad:
        # round-robin over reasons so every kind of rejection gets examples on the sheet
        groups: dict[str, list[FileRecord]] = {}
        for r in bad:
            key = 'duplicate' if r.status == 'duplicate' else _reason_key(r.reason)
            groups.setdefault(key, []).append(r)
        picked: list[FileRecord] = []
        queues = [list(g) for _, g in sorted(groups.items())]
        while len(picked) < max_per_sheet and any(queues):
            for q in queues:
                if q and len(picked) < max_per_sheet:
                    picked.append(q.pop(0))

        def bad_label(r: FileRecord) -> str:
            if r.status == 'duplicate':
                return 'dup of ' + Path(str(r.duplicate_of)).name
            return str(r.reason or 'rejected')
        p = report_dir / 'rejected.png'
        _sheet(picked, f'{title}: rejected/duplicate ({len(bad)} total)', bad_label).save(p)
        written.append(p)
    return written
