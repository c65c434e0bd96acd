"""Per-stage bookkeeping and the one stage driver, shared by every data_prep stage.

Each stage writes ``OUTPUT/report.json`` = ``{"stage": ..., "files": [record, ...], "summary": {...}}``
with one record per input file (kept / rejected / duplicate, with a reason), plus PNG contact sheets in
``OUTPUT/report/`` so a human can eyeball what was kept and why things were rejected.

While a stage runs, every record is appended to ``OUTPUT/.report.jsonl`` (one JSON line, O(1) per
record; flushed, so a crash or Ctrl-C loses nothing) and ``report.json`` is written once, compacted,
when the stage ends. Opening a report replays the journal over ``report.json``, so an interrupted run
resumes where it stopped.

A record remembers what it was made from: ``settings`` (a fingerprint of the stage settings that
shape its output) and ``input`` (size and mtime of the input file). A re-run redoes exactly the
inputs whose settings or file changed, or whose output vanished; the outputs of an input that
disappeared are deleted, and a redone input's previous outputs are removed before the new ones count.

:func:`run_stage` is the driver every stage goes through: it validates and merges the settings,
locks the output folder, opens the report, lists the inputs (the input stage's kept list when the
input folder has a report), calls the stage's ``process(run)`` for the per-file work, then writes the
summary (with a config echo) and the contact sheets under one policy.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import field
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

from data_prep.config import DataPrepError, merge_settings, stage_defaults

REPORT_NAME = 'report.json'
JOURNAL_NAME = '.report.jsonl'
LOCK_NAME = '.lock'
REPORT_DIR = 'report'
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.jfif')
STATUSES = ('kept', 'rejected', 'duplicate')
MAX_WARNINGS_SHOWN = 20  # per run on stderr; all of them are in the records / summary


@dataclasses.dataclass
class FileRecord:
    """What a stage decided about one input file."""
    path: str                          # input path (absolute) or, for scrape failures, the URL
    status: str                        # 'kept' | 'rejected' | 'duplicate'
    reason: str | None = None
    output: str | None = None          # absolute output path or None (first of several, see outputs)
    duplicate_of: str | None = None
    extra: dict = field(default_factory=dict)  # stage specific: kind, source, face box, hash, ...
    settings: str | None = None        # fingerprint of the settings the record was made with
    input: list | None = None          # [size, mtime_ns] of the input file when it was judged

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f'FileRecord {self.path}: unknown status {self.status!r}')

    @property
    def outputs(self) -> list[str]:
        """Every file this record produced (faces writes several crops per input)."""
        outs = self.extra.get('outputs') if isinstance(self.extra, dict) else None
        return list(outs) if outs else ([self.output] if self.output else [])

    def to_json(self) -> dict:
        """Plain-JSON form (``extra`` values that are not JSON are stringified)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_json(cls, d: dict) -> 'FileRecord':
        """Inverse of :meth:`to_json`; unknown keys are ignored."""
        return cls(path=str(d['path']), status=str(d['status']), reason=d.get('reason'),
                   output=d.get('output'), duplicate_of=d.get('duplicate_of'),
                   extra=dict(d.get('extra') or {}), settings=d.get('settings'), input=d.get('input'))


def atomic_write_json(path: Path, obj: Any, fsync: bool = True, indent: int | None = 1) -> None:
    """Write JSON to a temp file in the same folder then rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + path.name + '.', suffix='.tmp', dir=str(path.parent))
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=indent, default=str)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _replay(records: dict, journal: Path) -> None:
    """Apply journal lines (add / remove) over ``records``; a torn last line (crash) is ignored."""
    with open(journal, 'rb') as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if 'remove' in row:
                records.pop(row['remove'], None)
            else:
                rec = FileRecord.from_json(row)
                records[rec.path] = rec


def load_records(folder: str | Path) -> dict[str, FileRecord] | None:
    """Read-only view of a stage folder's records (report.json + journal); None when it has no report."""
    folder = Path(folder)
    rp, jp = folder / REPORT_NAME, folder / JOURNAL_NAME
    if not rp.exists() and not jp.exists():
        return None
    records: dict[str, FileRecord] = {}
    if rp.exists():
        try:
            data = json.loads(rp.read_text())
            rows = data['files'] if isinstance(data, dict) else data
            for row in rows:
                rec = FileRecord.from_json(row)
                records[rec.path] = rec
        except (ValueError, KeyError, TypeError) as e:
            raise DataPrepError(rp, f'unreadable report ({type(e).__name__}: {e})') from None
    if jp.exists():
        _replay(records, jp)
    return records


class StageReport:
    """``OUTPUT/report.json`` + its journal for one stage; loads an existing one so a stage can resume."""

    def __init__(self, output_dir: Path, stage: str, records: dict[str, FileRecord] | None = None,
                 summary: dict | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.stage = stage
        self._records: dict[str, FileRecord] = dict(records or {})
        self.summary: dict = dict(summary or {})
        self._journal = None

    @property
    def path(self) -> Path:
        """Location of report.json."""
        return self.output_dir / REPORT_NAME

    @classmethod
    def open(cls, output_dir: str | Path, stage: str) -> 'StageReport':
        """Load ``output_dir/report.json`` (+ journal) if present (resume), else start empty; creates
        output_dir. A report that cannot be parsed is moved aside (``report.json.corrupt``), never lost."""
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
            except (ValueError, KeyError, TypeError) as e:  # corrupt / truncated: keep it, start over
                os.replace(rp, rp.with_name(REPORT_NAME + '.corrupt'))
                print(f'data-prep: warning: {rp}: unreadable ({type(e).__name__}); moved aside, starting fresh',
                      file=sys.stderr)
                data, parsed = {}, []
            if isinstance(data, dict):
                old_stage = data.get('stage')
                if old_stage and old_stage != stage:
                    raise DataPrepError(rp, f'report belongs to stage {old_stage!r}, not {stage!r}; '
                                            f'use another output folder')
                summary = dict(data.get('summary') or {})
            records = {rec.path: rec for rec in parsed}
        if (out / JOURNAL_NAME).exists():
            _replay(records, out / JOURNAL_NAME)
        return cls(out, stage, records, summary)

    def _log(self, row: dict) -> None:
        if self._journal is None:
            self._journal = open(self.output_dir / JOURNAL_NAME, 'a', encoding='utf-8')
        self._journal.write(json.dumps(row, default=str) + '\n')
        self._journal.flush()  # to the OS: a killed process loses nothing

    def done(self, path: str) -> bool:
        """True when this input already has a record."""
        return str(path) in self._records

    def get(self, path: str) -> FileRecord | None:
        """The record for ``path`` or None."""
        return self._records.get(str(path))

    def add(self, rec: FileRecord) -> None:
        """Add or replace the record for ``rec.path`` (one journal line)."""
        rec.path = str(rec.path)
        self._records[rec.path] = rec
        self._log(dataclasses.asdict(rec))

    def remove(self, path: str) -> None:
        """Forget the record of ``path``."""
        if self._records.pop(str(path), None) is not None:
            self._log({'remove': str(path)})

    def records(self) -> list[FileRecord]:
        """All records in insertion order."""
        return list(self._records.values())

    def counts(self) -> dict[str, int]:
        """Number of records per status, plus per rejection reason (``rejected:<reason head>``)."""
        c: dict[str, int] = {s: 0 for s in STATUSES}
        for r in self._records.values():
            c[r.status] = c.get(r.status, 0) + 1
            if r.status == 'rejected':
                key = 'rejected:' + reason_key(r.reason)
                c[key] = c.get(key, 0) + 1
        return c

    def save(self, summary: dict | None = None) -> Path:
        """Compact: atomically write ``{"stage", "files", "summary"}`` (``summary`` merged in), then
        empty the journal (a crash in between only replays lines that report.json already holds)."""
        if summary is not None:
            self.summary.update(summary)
        obj = {'stage': self.stage, 'files': [dataclasses.asdict(r) for r in self._records.values()],
               'summary': self.summary}
        atomic_write_json(self.path, obj)
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.output_dir / JOURNAL_NAME)
        return self.path

    def close(self) -> None:
        """Close the journal file (records stay on disk)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def reason_key(reason: str | None) -> str:
    """Short grouping key of a reason: text before the first ':' or '(' (``'too_small: 100x80'`` -> ``too_small``)."""
    if not reason:
        return 'unknown'
    head = reason.split(':', 1)[0].split('(', 1)[0].strip()
    return head or 'unknown'


def output_exists(rec: FileRecord | None, output_dir: Path) -> bool:
    """Whether all of a record's output files are still on disk; records without output count as done."""
    if rec is None:
        return False
    for o in rec.outputs:
        p = Path(o)
        if not p.is_absolute():
            p = Path(output_dir) / p
        if not p.exists():
            return False
    return True


# ----------------------------------------------------------------------------------------------- listing

def _is_sidecar_or_meta(name: str) -> bool:
    return (name.endswith('.json') or name.endswith('.jsonl') or name.endswith('.tmp')
            or name.endswith('.sqlite3') or name.endswith('.corrupt')
            or name.endswith('.part'))  # gallery-dl's unfinished downloads


def scan_folder(input_dir: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(candidate files, dangling symlinks, hidden files skipped), each sorted, recursively.

    Every regular file counts (a stage must judge non-images too, as rejects), except JSON sidecars,
    ``report.json``, the ``report/`` contact-sheet folder, download archives, unfinished ``.part``
    downloads and hidden files and folders (those are returned separately so the caller can say so)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise DataPrepError(root, 'input folder does not exist', 2)
    files: list[Path] = []
    dangling: list[Path] = []
    hidden: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        keep = []
        for d in sorted(dirnames):
            if rel == Path('.') and d == REPORT_DIR:
                continue  # a stage's own contact sheets
            if d.startswith('.'):
                hidden.append(Path(dirpath) / d)
                continue
            keep.append(d)
        dirnames[:] = keep
        for fn in filenames:
            p = Path(dirpath) / fn
            if _is_sidecar_or_meta(fn):
                continue
            if fn.startswith('.'):
                hidden.append(p)
            elif p.is_symlink() and not p.exists():
                dangling.append(p)
            elif p.is_file():
                files.append(p)
    return sorted(files), sorted(dangling), sorted(hidden)


def iter_images(input_dir: Path) -> list[Path]:
    """Sorted recursive list of candidate input files (see :func:`scan_folder`)."""
    return scan_folder(input_dir)[0]


def read_sidecar(path: Path) -> dict:
    """Metadata JSON next to an image (``<image>.json``: source url, kind, ...); ``{}`` when absent.

    Raises ValueError naming the problem when the sidecar exists but cannot be read (the driver's
    :meth:`StageRun.sidecar` turns that into a warning on the file's record)."""
    side = Path(str(path) + '.json')
    try:
        text = side.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ValueError(f'sidecar {side.name} unreadable ({e.strerror or e})') from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ValueError(f'sidecar {side.name} is not JSON ({e})') from None
    if not isinstance(d, dict):
        raise ValueError(f'sidecar {side.name} is not a JSON object')
    return d


def load_sidecar(path: Path) -> tuple[dict, list[str]]:
    """(sidecar, warnings): an unreadable sidecar is {} plus the reason, for the file's record (the
    image itself is still processed)."""
    try:
        return read_sidecar(path), []
    except ValueError as e:
        return {}, [str(e)]


def write_sidecar(path: Path, meta: dict) -> Path:
    """Write ``<path>.json`` (atomic) holding ``meta``; returns the sidecar path."""
    side = Path(str(path) + '.json')
    atomic_write_json(side, meta, fsync=False)  # per-image file: rename-atomic is enough, fsync is slow
    return side


def progress(iterable: Iterable | None, total: int | None = None, desc: str = '') -> tqdm:
    """tqdm progress bar on stderr (off when DATA_PREP_QUIET is set)."""
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True,
                disable=bool(os.environ.get('DATA_PREP_QUIET')), leave=False)


def file_signature(path: Path) -> list | None:
    """[size, mtime_ns] of a file, None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def settings_fingerprint(settings: dict, volatile: Iterable[str] = ()) -> str:
    """12 hex digits of a hash of the settings that shape a stage's output (``volatile`` keys excluded)."""
    shaping = {k: v for k, v in settings.items() if k not in set(volatile)}
    return hashlib.sha1(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ stage driver

@contextlib.contextmanager
def folder_lock(folder: Path, what: str):
    """Exclusive lock on ``folder/.lock`` for the duration (yields the lock's file descriptor, which a
    child process may inherit so the lock lives as long as the child). A second run on the same
    folder is an error naming the pid that holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors='replace').strip() or '?'
                raise DataPrepError(folder, f'another {what} is running on this folder (pid {holder}); '
                                            f'wait for it to finish or stop it') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield fd
    finally:
        os.close(fd)


class StageRun:
    """What a stage's ``process(run)`` works with: settings, the input list, the report, and helpers
    that keep the bookkeeping (record signatures, stale outputs, warnings) in one place."""

    def __init__(self, stage: str, input_dir: Path | None, output_dir: Path, settings: dict,
                 report: StageReport, fingerprint: str, lock_fd: int | None = None) -> None:
        self.stage, self.input_dir, self.output_dir = stage, input_dir, output_dir
        self.settings, self.report, self.fingerprint = settings, report, fingerprint
        self.lock_fd = lock_fd
        self.inputs: list[Path] = []
        self.processed = 0           # inputs (re)done in this run
        self.warnings: list[str] = []
        self._shown = 0

    # -- warnings
    def warn(self, file: str | Path, msg: str) -> None:
        """A problem worth telling that is not a record of its own: stderr (the first few) + summary."""
        line = f'{file}: {msg}'
        self.warnings.append(line)
        if self._shown < MAX_WARNINGS_SHOWN:
            self._shown += 1
            print(f'data-prep: warning: {line}', file=sys.stderr)

    def work(self, fn, jobs: list, workers: int, initializer=None, desc: str | None = None,
             min_per_worker: int = 4):
        """Yield ``(job, fn(job))`` for every job with a progress bar: in ``workers`` processes when
        there are at least ``min_per_worker`` jobs per worker, else in this process. A job whose
        worker died yields :class:`data_prep.pool.WorkerDied` as its result (see :meth:`died`)."""
        from data_prep import pool
        workers = int(workers) or os.cpu_count() or 1
        bar = progress(None, total=len(jobs), desc=desc or self.stage)
        try:
            if workers > 1 and len(jobs) >= min_per_worker * workers:
                results = pool.imap_unordered(fn, jobs, workers, initializer=initializer)
            else:
                results = ((j, fn(j)) for j in jobs)
            for job, res in results:
                yield job, res
                bar.update(1)
        finally:
            bar.close()

    @staticmethod
    def died(path, died, **extra) -> FileRecord:
        """The record of a file whose worker died: not a verdict on the file, so retried next run."""
        return FileRecord(str(path), 'rejected', f'worker_died: {died.reason()}', extra={'retry': True, **extra})

    # -- records
    def up_to_date(self, path: Path) -> FileRecord | None:
        """The record of ``path`` when it was made with these settings from this very file and its
        outputs still exist (so the input needs no work); else None."""
        rec = self.report.get(str(path))
        if (rec is None or rec.settings != self.fingerprint or rec.extra.get('retry')
                or rec.input != file_signature(path) or not output_exists(rec, self.output_dir)):
            return None
        return rec

    def previous(self, path: Path) -> FileRecord | None:
        """The record of ``path`` if made from this very file (size + mtime), whatever the settings."""
        rec = self.report.get(str(path))
        return rec if rec is not None and rec.input == file_signature(path) else None

    def add(self, rec: FileRecord, count: bool = True) -> None:
        """Record a decision (stamped with settings + input signature). Outputs of the record it
        replaces that the new one does not keep are deleted; warnings on it are shown."""
        p = Path(rec.path)
        if rec.settings is None:
            rec.settings = self.fingerprint
        if rec.input is None and p.is_absolute():
            rec.input = file_signature(p)
        old = self.report.get(rec.path)
        if old is not None:
            self.remove_outputs(set(old.outputs) - set(rec.outputs))
        for w in rec.extra.get('warnings') or ():
            self.warn(rec.path, w)
        self.report.add(rec)
        if count:
            self.processed += 1

    def remove_outputs(self, outputs: Iterable[str]) -> None:
        """Delete output files (and their sidecars) -- only ever inside this stage's output folder."""
        out = self.output_dir.resolve()
        for o in outputs:
            p = Path(o)
            if not p.is_absolute() or not p.resolve().is_relative_to(out) or p.resolve() == out:
                continue
            for q in (p, Path(str(p) + '.json')):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    q.unlink()

    def drop_stale(self, live: set[str]) -> int:
        """Forget records whose input is gone (not in ``live``) and delete their outputs."""
        stale = [r for r in self.report.records() if r.path not in live]
        for r in stale:
            self.remove_outputs(r.outputs)
            self.report.remove(r.path)
        return len(stale)


def collect_inputs(run: StageRun) -> set[str]:
    """Fill ``run.inputs``: the input stage's kept outputs when INPUT has a report, else the files in
    INPUT. Dangling symlinks become rejected records, skipped hidden files a warning. Returns the set
    of record paths that are live inputs of this run."""
    inp, out = run.input_dir, run.output_dir
    upstream = load_records(inp)
    live: set[str] = set()
    if upstream is not None:
        listed: list[Path] = []
        missing = 0
        for r in upstream.values():
            if r.status != 'kept':
                continue
            for o in r.outputs:
                p = Path(o) if Path(o).is_absolute() else inp / o
                if p.is_file():
                    listed.append(p)
                elif p.is_dir():
                    continue
                else:
                    missing += 1
                    if missing <= 3:
                        run.warn(p, f'kept in {inp / REPORT_NAME} but missing; skipped')
        run.inputs = sorted(set(listed))
        if missing > 3:
            run.warn(inp / REPORT_NAME, f'{missing} kept files are missing in all; skipped')
        known = {str(p) for p in run.inputs}
        known |= {str(Path(o)) for r in upstream.values() for o in r.outputs}
        extra = [p for p in scan_folder(inp)[0] if str(p) not in known
                 and not p.resolve().is_relative_to(out.resolve())]
        if extra:
            run.warn(inp, f'{len(extra)} files that its {REPORT_NAME} does not keep are not inputs of '
                          f'this stage (e.g. {extra[0].name}); run the stage before on them first')
    else:
        files, dangling, hidden = scan_folder(inp)
        if out.resolve().is_relative_to(inp.resolve()):  # OUTPUT inside INPUT: not our own files
            files = [f for f in files if not f.resolve().is_relative_to(out.resolve())]
        run.inputs = files
        for p in dangling:
            live.add(str(p))
            run.add(FileRecord(str(p), 'rejected', f'dangling_symlink: target {os.readlink(p)} missing'),
                    count=False)
        if hidden:
            run.warn(inp, f'skipped {len(hidden)} hidden files/folders (e.g. {hidden[0].name})')
    live |= {str(p) for p in run.inputs}
    return live


def run_stage(module, input_dir: str | Path | None, output_dir: str | Path, cfg: dict | None = None,
              stage: str | None = None) -> dict:
    """Run one stage: validate + merge settings (against the stage's DEFAULTS, nested keys too), lock
    OUTPUT, open the report, list the inputs, ``module.process(run)``, then summary, config echo and
    contact sheets. Bad input raises :class:`DataPrepError`; returns the summary."""
    stage = stage or module.STAGE
    settings = merge_settings(stage_defaults(stage, module), cfg, f'{stage} settings')
    if hasattr(module, 'check_settings'):
        module.check_settings(settings)
    out = Path(output_dir).resolve()
    inp = Path(input_dir).resolve() if input_dir is not None else None
    if getattr(module, 'NEEDS_INPUT', True):
        if inp is None or not inp.is_dir():
            raise DataPrepError(input_dir, 'input folder does not exist', 2)
        if inp == out:
            raise DataPrepError(out, 'output folder must differ from the input folder (inputs are never modified)', 2)
    fp = settings_fingerprint(settings, getattr(module, 'VOLATILE', ()))
    t0 = time.perf_counter()
    with folder_lock(out, f'data-prep {stage}') as lock_fd:
        report = StageReport.open(out, stage)
        run = StageRun(stage, inp, out, settings, report, fp, lock_fd)
        live = None
        try:
            live = collect_inputs(run) if getattr(module, 'NEEDS_INPUT', True) else None
            summary = dict(module.process(run) or {})
            if live is not None:
                n_stale = run.drop_stale(live)
                if n_stale:
                    summary['stale_removed'] = n_stale
        except DataPrepError as e:  # bad input found while working: the records so far are the report
            report.save(_summary(run, live, t0, {**report.summary, 'error': str(e)}))
            raise
        except BaseException:
            report.close()  # the journal already holds every record: the next run resumes from it
            raise
        full = _summary(run, live, t0, summary)
        try:
            write_contact_sheets(report.records(), out / REPORT_DIR, f'{stage}: {out.name}')
        except Exception as e:  # one policy for all stages: a sheet failure never loses the stage's work
            full['contact_sheet_error'] = f'{type(e).__name__}: {e}'
            run.warn(out / REPORT_DIR, f'contact sheets not written:\n{traceback.format_exc()}')
        report.save(full)
    return full


def _summary(run: StageRun, live, t0: float, summary: dict) -> dict:
    recs = run.report.records()
    counts = {'kept': sum(r.status == 'kept' for r in recs),
              'rejected': sum(r.status == 'rejected' for r in recs),
              'duplicates': sum(r.status == 'duplicate' for r in recs)}
    return {'stage': run.stage, **({'inputs': len(run.inputs)} if live is not None else {}), **counts,
            'processed_now': run.processed, 'seconds': round(time.perf_counter() - t0, 3), **summary,
            'warnings': run.warnings[:200], 'warning_count': len(run.warnings), 'config': run.settings}


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
        except Exception:  # noqa: BLE001 -- non-images, truncated files, bombs: show a placeholder
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
            key = 'duplicate' if r.status == 'duplicate' else reason_key(r.reason)
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
