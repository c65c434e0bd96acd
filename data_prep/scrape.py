"""Stage 1, ``scrape``: download the images of a category's sources with gallery-dl.

gallery-dl is GPL-2.0, this package is Apache-2.0: we therefore never ``import gallery_dl``; it is run
as a separate program (``python -m gallery_dl ...``) and we only read the files, metadata JSON and
log it writes.  Every source ``{url, kind}`` (an ArtStation / Pinterest / DeviantArt search, gallery or
board URL, or a plain image URL) is one gallery-dl run into OUTPUT with

* ``--download-archive OUTPUT/.archive.sqlite3`` so re-runs fetch only what is new,
* ``--sleep`` / ``--sleep-request`` / ``--sleep-429`` rate limits, ``--retries`` (5xx always, plus
  ``retry_codes`` = 429 by default via ``-o retry-codes=[429]``) and ``--http-timeout``,
* ``--write-metadata``: gallery-dl's JSON next to each file, which we then rewrite into our sidecar
  ``<file>.json`` = ``{"kind", "source", "extractor", "gallery_dl": {...}}`` read by later stages.

Files are named ``<8-hex hash of the source URL>_<extractor>_<gallery-dl filename>.<ext>``: unique
across sources and deterministic, so a re-run maps every file back to its source.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from data_prep.report import (FileRecord, StageReport, iter_images, progress, read_sidecar,
                              write_contact_sheets, write_sidecar)

STAGE = 'scrape'
KINDS = ('photo', 'painting')

DEFAULTS: dict = {
    'sleep': '1.0-2.0',        # seconds before each file download (gallery-dl --sleep; a range is jittered)
    'sleep_request': '1.0',    # seconds between API/page requests while extracting (--sleep-request)
    'sleep_429': '60',         # seconds to wait after "429 Too Many Requests" (--sleep-429)
    'retries': 4,              # retries per HTTP request (--retries); 5xx and retry_codes are retried
    'retry_codes': [429],      # extra HTTP codes to retry file downloads on (gallery-dl's retry-codes option)
    'http_timeout': 30.0,      # seconds (--http-timeout)
    'max_per_source': 500,     # files per source URL (--range 1-N); None = everything
    'filesize_min': None,      # e.g. '40k': skip tiny files before downloading (--filesize-min)
    'source_timeout': None,    # seconds for one source's whole gallery-dl run; None = no limit
    'ignore_user_config': False,  # True: ignore ~/.config/gallery-dl (reproducible runs, tests)
    'gallery_dl_config': None,    # extra gallery-dl config file (credentials, cookies) passed with -c
    'extra_args': [],          # further gallery-dl arguments appended verbatim
}

ARCHIVE = '.archive.sqlite3'
LOG = '.gallery-dl.log'
ERRORS = '.gallery-dl-errors.txt'
# gallery-dl log lines we turn into 'rejected' records
_HTTP_WARN = re.compile(r"\[downloader\.\w+\]\[warning\] (.*) for '([^']+)'")
_FAILED = re.compile(r"\[download\]\[error\] Failed to download (.+)$")


def source_id(url: str) -> str:
    """Short stable id of a source URL: the file-name prefix of everything downloaded from it."""
    return hashlib.sha1(url.strip().encode()).hexdigest()[:8]


def normalise_sources(sources) -> list[dict]:
    """Validate ``[{url, kind}, ...]`` (also accepts plain URL strings = kind 'painting'); raises ValueError."""
    out = []
    for i, s in enumerate(sources or []):
        if isinstance(s, str):
            s = {'url': s, 'kind': 'painting'}
        s = dict(s)
        url = str(s.get('url', '')).strip()
        if not re.match(r'(?i)^https?://', url):
            raise ValueError(f'source {i}: url {url!r} is not an http(s) URL')
        kind = s.get('kind', 'painting')
        if kind not in KINDS:
            raise ValueError(f'source {i} ({url}): kind {kind!r} must be one of {KINDS}')
        out.append({**s, 'url': url, 'kind': kind})
    return out


def gallery_dl_command(url: str, output_dir: Path, cfg: dict) -> list[str]:
    """The gallery-dl command line for one source (run as a subprocess: GPL code is never imported)."""
    out = Path(output_dir)
    sid = source_id(url)
    cmd = [sys.executable, '-m', 'gallery_dl',
           '-D', str(out),
           # literal prefix = source id; {category} = extractor name; '/' in names is made safe by gallery-dl
           '-f', f'{sid}_{{category}}_{{filename}}.{{extension}}',
           '--download-archive', str(out / ARCHIVE),
           '--write-metadata',
           '--write-log', str(out / LOG),
           '-e', str(out / ERRORS),
           '--sleep', str(cfg['sleep']),
           '--sleep-request', str(cfg['sleep_request']),
           '--sleep-429', str(cfg['sleep_429']),
           '--retries', str(int(cfg['retries'])),
           '--http-timeout', str(float(cfg['http_timeout'])),
           '--no-colors']
    if cfg.get('retry_codes'):
        # gallery-dl retries 5xx by itself; 429 on a file download is only retried when listed here
        cmd += ['-o', 'retry-codes=' + json.dumps([int(c) for c in cfg['retry_codes']])]
    if cfg.get('ignore_user_config'):
        cmd.append('--config-ignore')
    if cfg.get('gallery_dl_config'):
        cmd += ['-c', str(cfg['gallery_dl_config'])]
    if cfg.get('max_per_source'):
        cmd += ['--range', f'1-{int(cfg["max_per_source"])}']
    if cfg.get('filesize_min'):
        cmd += ['--filesize-min', str(cfg['filesize_min'])]
    cmd += [str(a) for a in (cfg.get('extra_args') or [])]
    cmd.append(url)
    return cmd


def _parse_log(text: str) -> list[tuple[str, str]]:
    """(url or file name, reason) for every file gallery-dl finally failed to download."""
    failures = []
    last_warn: tuple[str, str] | None = None
    for line in text.splitlines():
        m = _HTTP_WARN.search(line)
        if m:
            last_warn = (m.group(2), m.group(1))
            continue
        m = _FAILED.search(line)
        if m:
            if last_warn is not None:
                failures.append((last_warn[0], f'download failed: {last_warn[1]}'))
            else:
                failures.append((m.group(1).strip(), 'download failed'))
            last_warn = None
    return failures


def _finish_sidecar(path: Path, src: dict) -> dict:
    """Turn gallery-dl's metadata JSON next to ``path`` into our sidecar (idempotent)."""
    meta = read_sidecar(path)
    if meta.get('data_prep_stage') == STAGE and meta.get('source') == src['url']:
        return meta
    gdl = meta.get('gallery_dl', meta)
    side = {'kind': src['kind'], 'source': src['url'], 'extractor': gdl.get('category'),
            'data_prep_stage': STAGE, 'gallery_dl': gdl}
    write_sidecar(path, side)
    return side


def _files_of(output_dir: Path, sid: str) -> list[Path]:
    return [p for p in iter_images(output_dir) if p.parent == output_dir and p.name.startswith(sid + '_')]


def run(input_dir: Path | None, output_dir: Path, cfg: dict | None = None) -> dict:
    """Download every source of ``cfg['sources']`` into ``output_dir``; returns the summary.

    ``cfg`` = DEFAULTS overrides plus ``sources: [{url, kind}]``. ``input_dir`` is unused except that
    a file ``input_dir/sources.json`` (a list of sources) may supply the sources.
    A source whose run fails is reported and the next one is tried; nothing is ever deleted.
    """
    unknown = set(cfg or {}) - set(DEFAULTS) - {'sources'}
    if unknown:  # a typo must not silently fall back to a default (e.g. no rate limit)
        raise ValueError(f'scrape: unknown config keys {sorted(unknown)}')
    cfg = {**DEFAULTS, **(cfg or {})}
    sources = cfg.get('sources')
    if not sources and input_dir is not None and (Path(input_dir) / 'sources.json').is_file():
        sources = json.loads((Path(input_dir) / 'sources.json').read_text())
    sources = normalise_sources(sources)
    if not sources:
        raise ValueError('scrape: no sources (give sources: [{url, kind}] in the config)')
    out = Path(output_dir).resolve()
    report = StageReport.open(out, STAGE)

    per_source: dict[str, dict] = {}
    for src in progress(sources, total=len(sources), desc='scrape sources'):
        url, sid = src['url'], source_id(src['url'])
        log_path = out / LOG
        log_start = log_path.stat().st_size if log_path.exists() else 0
        err_path = out / ERRORS
        err_start = err_path.read_text().splitlines() if err_path.exists() else []
        before = {p.name for p in _files_of(out, sid)}
        rc: int | str
        try:
            proc = subprocess.run(gallery_dl_command(url, out, cfg), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=cfg.get('source_timeout'))
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 'timeout'
        except OSError as e:
            rc = f'could not start gallery-dl: {e}'
        files = _files_of(out, sid)
        new = [p for p in files if p.name not in before]
        for p in files:
            side = _finish_sidecar(p, src)
            report.add(FileRecord(path=str(p), status='kept', output=str(p),
                                  extra={'kind': src['kind'], 'source': url,
                                         'extractor': side.get('extractor')}))
        failed = 0
        if log_path.exists():
            with open(log_path, errors='replace') as f:
                f.seek(log_start)
                for what, reason in _parse_log(f.read()):
                    failed += 1
                    report.add(FileRecord(path=what, status='rejected', reason=reason,
                                          extra={'kind': src['kind'], 'source': url}))
        errs = err_path.read_text().splitlines() if err_path.exists() else []
        src_error = url in errs[len(err_start):] and not files and not failed
        if src_error or isinstance(rc, str):
            report.add(FileRecord(path=url, status='rejected',
                                  reason=f'source failed: {rc if isinstance(rc, str) else "gallery-dl exit " + str(rc)}'
                                         f' (see {LOG})', extra={'kind': src['kind'], 'source': url}))
        per_source[url] = {'kind': src['kind'], 'files': len(files), 'new': len(new), 'failed': failed,
                           'exit': rc}
        report.save()

    recs = report.records()
    kept = [r for r in recs if r.status == 'kept']
    summary = {'stage': STAGE, 'sources': per_source, 'kept': len(kept),
               'rejected': sum(r.status == 'rejected' for r in recs),
               'new': sum(s['new'] for s in per_source.values()),
               'by_kind': {k: sum(r.extra.get('kind') == k for r in kept) for k in KINDS}}
    report.save(summary)
    write_contact_sheets(recs, out / 'report', f'{STAGE}: {out.name}')
    return summary
