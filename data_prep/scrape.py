"""Stage 1, ``scrape``: download the images of a category's sources with gallery-dl.

gallery-dl is GPL-2.0, this package is Apache-2.0: we therefore never ``import gallery_dl``; it is run
as a separate program (``python -m gallery_dl ...``) and we only read the files, metadata JSON and
logs it writes.  Every source ``{url, kind}`` (an ArtStation / Pinterest / DeviantArt search, gallery or
board URL, or a plain image URL) is one gallery-dl run into OUTPUT with

* ``--download-archive OUTPUT/.archive.sqlite3`` so re-runs fetch only what is new,
* ``--sleep`` / ``--sleep-request`` / ``--sleep-429`` rate limits, ``--retries`` (5xx always, plus
  ``retry_codes`` = 429 by default) and ``--http-timeout``,
* ``--write-metadata``: gallery-dl's JSON next to each file, which we then rewrite into our sidecar
  ``<file>.json`` = ``{"kind", "source", "url", "extractor", "gallery_dl": {...}}`` read by later stages,
* a config file of its own per run (``OUTPUT/.gallery-dl/<source id>.<n>.json``): file names from
  the site's ids (``{category}_{id}_{num}``, ArtStation ``{category}_{id}_{asset[id]}``; a plain URL
  ``directlink_<source id>_<name>``) so two images never share a name; only image files
  (``image_extensions``: no videos), no ArtStation 3D views / videos, no DeviantArt journals, so
  ``max_per_source`` counts images; a log with the file of every line; the URL of every file.

Every outcome is a record: a downloaded (or already archived) file is ``kept``; a file that failed is
``rejected`` with its URL and the HTTP status (``download failed: HTTP 404 Not Found``); a source
that failed or yielded nothing is ``rejected`` with gallery-dl's exit status and its last error
line. The per-run log, results and stderr stay in ``OUTPUT/.gallery-dl/``. The stage fails (exit
non-zero) when no source yielded a file.

gallery-dl runs in its own process group holding the folder's lock (inherited), so stopping
data-prep (Ctrl-C, SIGTERM) stops it, and a restart can never run a second scraper on the archive
while an orphaned one still runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_prep.config import DataPrepError
from data_prep.report import FileRecord, StageRun, progress, read_sidecar, run_stage, write_sidecar

STAGE = 'scrape'
NEEDS_INPUT = False
KINDS = ('photo', 'painting')
# --sleep-429 exists from 1.30.1 on (gallery-dl CHANGELOG); older versions reject the command line
MIN_GALLERY_DL = (1, 30, 1)

DEFAULTS: dict = {
    'sources': None,           # [{url, kind}]; the config's top-level `sources`
    'sleep': '1.0-2.0',        # seconds before each file download (gallery-dl --sleep; a range is jittered)
    'sleep_request': '1.0',    # seconds between API/page requests while extracting (--sleep-request)
    'sleep_429': '60',         # seconds to wait after "429 Too Many Requests" (--sleep-429)
    'retries': 4,              # retries per HTTP request (--retries); 5xx and retry_codes are retried
    'retry_codes': [429],      # extra HTTP codes to retry file downloads on (gallery-dl's retry-codes option)
    'http_timeout': 30.0,      # seconds (--http-timeout)
    'max_per_source': 500,     # image files per source URL (--range 1-N); None = everything
    'filesize_min': None,      # e.g. '40k': skip tiny files before downloading (--filesize-min)
    'image_extensions': ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp', 'tif', 'tiff', 'jfif'],
    'source_timeout': None,    # seconds for one source's whole gallery-dl run; None = no limit
    'ignore_user_config': False,  # True: ignore ~/.config/gallery-dl (reproducible runs, tests)
    'gallery_dl_config': None,    # extra gallery-dl config file (credentials, per-site options), -c
    'cookies': None,              # cookies.txt (Netscape format) for sites that need a login, -C
    'cookies_from_browser': None,  # e.g. 'firefox' or 'chrome:Profile 1' (--cookies-from-browser)
    'probe': 0,                # > 0: fetch only this many files per source, no archive (access check)
    'extra_args': [],          # further gallery-dl arguments appended verbatim
}
VOLATILE = tuple(DEFAULTS)     # records are about files, not settings

ARCHIVE = '.archive.sqlite3'
RUNS = '.gallery-dl'           # per source run: <sid>.<n>.json (config), .log, .results, .stderr
_HTTP = re.compile(r"'(\d{3}) ([^']*)' for '([^']+)'")


def source_id(url: str) -> str:
    """Short stable id of a source URL (names its run files, and plain-URL downloads)."""
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


def gallery_dl_version() -> tuple[int, ...]:
    """Version of the gallery-dl this Python runs (``python -m gallery_dl --version``)."""
    try:
        p = subprocess.run([sys.executable, '-m', 'gallery_dl', '--version'], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataPrepError('gallery-dl', f'cannot run it ({e})') from None
    m = re.match(r'(\d+)\.(\d+)\.(\d+)', p.stdout.strip())
    if p.returncode != 0 or not m:
        raise DataPrepError('gallery-dl', 'not installed in this Python (pip install "gallery-dl>=1.30.1"): '
                                          + (p.stderr.strip().splitlines() or ['?'])[-1])
    return tuple(int(x) for x in m.groups())


def run_config(sid: str, cfg: dict, log: Path) -> dict:
    """gallery-dl configuration of one source run (written to a file and passed with ``-c``)."""
    exts = ', '.join(repr(str(e).lower()) for e in cfg['image_extensions'])
    return {
        'extractor': {
            'url-metadata': 'gdl_url',  # the file's URL in its metadata: failures name it
            # the site's ids, so two images never share a name (the URL's file name often repeats)
            'filename': '{category}_{id|filename}{num:?_//}.{extension}',
            'image-filter': f'extension.lower() in ({exts},)',  # before --range: it counts images
            'artstation': {'filename': '{category}_{id}_{asset[id]}.{extension}',
                           'mviews': False, 'videos': False, 'external': False},
            'deviantart': {'filename': '{category}_{index}{num:?_//}.{extension}', 'journals': 'none'},
            'pinterest': {'videos': False},
            'directlink': {'filename': f'{{category}}_{sid}_{{filename}}.{{extension}}'},
            **({'retry-codes': [int(c) for c in cfg['retry_codes']]} if cfg.get('retry_codes') else {}),
        },
        'output': {'logfile': {'path': str(log), 'mode': 'w', 'level': 'info',
                               'format': '{levelname}\t{path.filename}\t{keywords.gdl_url}\t{name}\t{message}'}},
    }


def gallery_dl_command(url: str, output_dir: Path, cfg: dict, run_cfg: Path | None = None,
                       results: Path | None = None) -> list[str]:
    """The gallery-dl command line for one source (run as a subprocess: GPL code is never imported)."""
    out = Path(output_dir)
    cmd = [sys.executable, '-m', 'gallery_dl', '-D', str(out), '--write-metadata', '--no-colors',
           '--sleep', str(cfg['sleep']), '--sleep-request', str(cfg['sleep_request']),
           '--sleep-429', str(cfg['sleep_429']), '--retries', str(int(cfg['retries'])),
           '--http-timeout', str(float(cfg['http_timeout']))]
    if not cfg.get('probe'):
        cmd += ['--download-archive', str(out / ARCHIVE)]
    if cfg.get('ignore_user_config'):
        cmd.append('--config-ignore')
    if run_cfg is not None:
        cmd += ['-c', str(run_cfg)]
    if cfg.get('gallery_dl_config'):
        cmd += ['-c', str(cfg['gallery_dl_config'])]
    if cfg.get('cookies'):
        cmd += ['-C', str(cfg['cookies'])]
    if cfg.get('cookies_from_browser'):
        cmd += ['--cookies-from-browser', str(cfg['cookies_from_browser'])]
    n = int(cfg['probe']) if cfg.get('probe') else cfg.get('max_per_source')
    if n:
        cmd += ['--range', f'1-{int(n)}']
    if cfg.get('filesize_min'):
        cmd += ['--filesize-min', str(cfg['filesize_min'])]
    if results is not None:  # one line per file outcome: the file, its URL
        for event in ('after', 'skip', 'error'):
            cmd += ['--Print-to-file', f'{event}:{event}\t{{_path}}\t{{gdl_url}}', str(results)]
    cmd += [str(a) for a in (cfg.get('extra_args') or [])]
    cmd.append(url)
    return cmd


def parse_results(text: str) -> list[tuple[str, str, str]]:
    """(event, file path, url) per line of a run's results file."""
    out = []
    for line in text.splitlines():
        parts = line.split('\t')
        if len(parts) >= 3 and parts[0] in ('after', 'skip', 'error'):
            out.append((parts[0], parts[1], parts[2]))
    return out


def parse_log(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """({file name: its warning / error messages}, messages of errors tied to no file)."""
    per_file: dict[str, list[str]] = {}
    general: list[str] = []
    for line in text.splitlines():
        parts = line.split('\t', 4)
        if len(parts) < 5:
            continue
        level, fname, _, _, msg = parts
        if level not in ('warning', 'error'):
            continue
        if fname and fname != 'None':
            per_file.setdefault(fname, []).append(msg)
        elif level == 'error':
            general.append(msg)
    return per_file, general


def failure_reason(messages: list[str]) -> str:
    """'download failed: HTTP 404 Not Found' (the last HTTP status gallery-dl saw for the file), or
    what it said instead."""
    for msg in reversed(messages):
        m = _HTTP.search(msg)
        if m:
            return f'download failed: HTTP {m.group(1)} {m.group(2)}'.rstrip()
    for msg in reversed(messages):
        if msg.startswith('HTML response') or msg.startswith('HTTP redirect'):
            return 'download failed: HTTP 200 with an HTML page instead of an image (a login or error page?)'
    other = [m for m in messages if not m.startswith('Failed to download')]
    return 'download failed' + (f': {other[-1][:200]}' if other else '')


def _preexec() -> None:  # in the child, before exec
    os.setsid()  # own process group: we stop it (and its children) as a whole
    try:  # Linux: the kernel sends SIGTERM to gallery-dl if data-prep dies without cleaning up
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to gallery-dl's process group, SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_gallery_dl(cmd: list[str], stderr_path: Path, timeout: float | None, lock_fd: int | None) -> int | str:
    """Run gallery-dl; its exit code, or 'timeout'. Whatever stops us (Ctrl-C, SIGTERM, an error)
    stops gallery-dl first."""
    with open(stderr_path, 'w') as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                preexec_fn=_preexec if os.name == 'posix' else None,
                                pass_fds=(lock_fd,) if lock_fd is not None else ())
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return 'timeout'
        except BaseException:
            _stop(proc)
            raise


def _finish_sidecar(path: Path, src: dict, url: str | None) -> dict:
    """Turn gallery-dl's metadata JSON next to ``path`` into our sidecar (idempotent; updates the kind
    when the config changed it)."""
    try:
        meta = read_sidecar(path)
    except ValueError:
        meta = {}
    if meta.get('data_prep_stage') == STAGE and meta.get('source') == src['url'] and meta.get('kind') == src['kind']:
        return meta
    gdl = meta.get('gallery_dl', meta)
    side = {'kind': src['kind'], 'source': src['url'], 'url': url or meta.get('url') or gdl.get('gdl_url'),
            'extractor': gdl.get('category'), 'data_prep_stage': STAGE, 'gallery_dl': gdl}
    write_sidecar(path, side)
    return side


def scrape_source(run: StageRun, src: dict) -> dict:
    """One gallery-dl run for one source; records for every file and failure; its summary."""
    cfg, out = run.settings, run.output_dir
    url, sid = src['url'], source_id(src['url'])
    runs = out / RUNS
    runs.mkdir(exist_ok=True)
    n = 1 + sum(1 for _ in runs.glob(f'{sid}.*.log'))
    stem = runs / f'{sid}.{n}'
    log, results, stderr = (Path(f'{stem}.{ext}') for ext in ('log', 'results', 'stderr'))
    conf = Path(f'{stem}.json')
    conf.write_text(json.dumps(run_config(sid, cfg, log), indent=1))
    cmd = gallery_dl_command(url, out, cfg, conf, results)
    t0 = time.perf_counter()
    try:
        rc = run_gallery_dl(cmd, stderr, cfg.get('source_timeout'), run.lock_fd)
    except OSError as e:
        rc = f'could not start gallery-dl: {e}'
    events = parse_results(results.read_text(errors='replace')) if results.exists() else []
    per_file, general = parse_log(log.read_text(errors='replace')) if log.exists() else ({}, [])
    base = {'kind': src['kind'], 'source': url, 'run': str(stem.relative_to(out))}
    ok_urls, kept, new, failed = set(), 0, 0, 0
    for event, fpath, furl in events:
        p = Path(fpath)
        if not p.is_absolute():
            p = out / p
        if event in ('after', 'skip'):
            ok_urls.add(furl)
            if not p.is_file():
                failed += 1
                run.add(FileRecord(str(p), 'rejected', f'in {ARCHIVE} but the file is missing (remove its entry '
                                                      f'from the archive to fetch it again)', extra={**base, 'url': furl}))
                continue
            side = _finish_sidecar(p, src, furl if furl != 'None' else None)
            kept += 1
            new += event == 'after'
            run.add(FileRecord(str(p), 'kept', output=str(p),
                               extra={**base, 'url': side.get('url'), 'extractor': side.get('extractor')}))
        else:
            failed += 1
            what = furl if furl and furl != 'None' else str(p)
            run.add(FileRecord(what, 'rejected', failure_reason(per_file.get(p.name, [])),
                               extra={**base, 'file': p.name}))
    # failures fixed by this run (a retried URL now downloaded) are no longer failures
    for r in run.report.records():
        if r.status == 'rejected' and r.extra.get('source') == url and (r.path in ok_urls or (r.path == url and kept)):
            run.report.remove(r.path)
    stderr_tail = [ln for ln in (stderr.read_text(errors='replace').splitlines() if stderr.exists() else []) if ln.strip()]
    if not kept and not failed:
        why = general[-1] if general else (stderr_tail[-1] if stderr_tail else '')
        if isinstance(rc, str):
            reason = f'source failed: gallery-dl {rc}'
        elif rc:
            reason = f'source failed: gallery-dl exit {rc}'
        else:
            reason = 'source yielded no files (an empty search, a login wall, or nothing matched the filters)'
        run.add(FileRecord(url, 'rejected', reason + (f': {why[:300]}' if why else '') + f' (see {stem.name}.*)',
                           extra={**base, 'stderr': stderr_tail[-20:]}))
    elif general:
        run.warn(url, f'gallery-dl: {general[-1][:300]}')
    return {'kind': src['kind'], 'files': kept, 'new': new, 'failed': failed, 'exit': rc,
            'seconds': round(time.perf_counter() - t0, 2), 'log': str(log.relative_to(out))}


def process(run: StageRun) -> dict:
    """Download every source of ``sources`` into the output folder; per-source summary."""
    cfg = run.settings
    try:
        sources = normalise_sources(cfg.get('sources'))
    except ValueError as e:
        raise DataPrepError('scrape settings', str(e)) from None
    if not sources:
        raise DataPrepError('scrape settings', 'no sources (give sources: [{url, kind}] in the config)')
    version = gallery_dl_version()
    if version < MIN_GALLERY_DL:
        raise DataPrepError('gallery-dl', f'version {".".join(map(str, version))} is too old: data-prep needs '
                                          f'>= {".".join(map(str, MIN_GALLERY_DL))} (--sleep-429); '
                                          f'pip install -U "gallery-dl>=1.30.1"')
    before = {r.path: r.extra.get('kind') for r in run.report.records() if r.status == 'kept'}
    per_source: dict[str, dict] = {}
    for src in progress(sources, total=len(sources), desc='scrape sources'):
        per_source[src['url']] = scrape_source(run, src)
    # a source whose kind changed in the config: its files already downloaded get the new kind (those
    # gallery-dl reported again got it above; the others -- beyond --range now, say -- here)
    kinds = {s['url']: s['kind'] for s in sources}
    for r in run.report.records():
        k = kinds.get(r.extra.get('source'))
        if r.status == 'kept' and k and r.extra.get('kind') != k and Path(r.path).is_file():
            _finish_sidecar(Path(r.path), {'url': r.extra['source'], 'kind': k}, r.extra.get('url'))
            r.extra['kind'] = k
            run.add(r, count=False)
    relabelled = sum(1 for r in run.report.records()
                     if r.status == 'kept' and r.path in before and before[r.path] != r.extra.get('kind'))
    recs = run.report.records()
    kept = [r for r in recs if r.status == 'kept']
    summary = {'sources': per_source, 'gallery_dl': '.'.join(map(str, version)),
               'new': sum(s['new'] for s in per_source.values()), 'relabelled': relabelled,
               'by_kind': {k: sum(r.extra.get('kind') == k for r in kept) for k in KINDS}}
    run.processed = summary['new']
    if not any(s['files'] for s in per_source.values()):
        failures = '; '.join(f'{u}: {r.reason}' for r in recs for u in [r.path]
                             if r.status == 'rejected' and r.path in per_source)
        run.report.summary.update(summary)
        raise DataPrepError(run.output_dir, f'no source yielded a file ({failures[:600]})')
    return summary


def run(input_dir: Path | None, output_dir: Path, cfg: dict | None = None) -> dict:
    """Download every source of ``cfg['sources']`` into ``output_dir``; returns the summary."""
    return run_stage(sys.modules[__name__], input_dir, output_dir, cfg)
