"""scrape stage against a local HTTP server on 127.0.0.1 (no internet): gallery-dl's direct-link
extractor, a 429 and a 503 answered once, a 404, a truncated file, sidecar metadata, archive-based re-runs."""
from __future__ import annotations

import http.server
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import scrape
from data_prep.report import iter_images, read_sidecar


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(b, 'JPEG', quality=90)
    return b.getvalue()


class _Server:
    """Serves FILES; /busy.jpg answers 429 and /flaky.jpg 503 on their first request; counts requests
    per path."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.hits = files, {}
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                path = self.path.split('?')[0]
                with outer.lock:
                    n = outer.hits[path] = outer.hits.get(path, 0) + 1
                if path in ('/busy.jpg', '/flaky.jpg') and n == 1:
                    self.send_response(429 if path == '/busy.jpg' else 503)
                    self.send_header('Retry-After', '0')
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                body = outer.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Type', 'image/jpeg')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f'http://127.0.0.1:{self.port}/{name}'

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    good = _jpeg(1)
    files = {'/a.jpg': good, '/b.jpg': _jpeg(2), '/busy.jpg': _jpeg(3), '/flaky.jpg': _jpeg(4),
             '/broken.jpg': good[: len(good) // 3]}
    with _Server(files) as s:
        yield s


FAST = {'sleep': '0', 'sleep_request': '0', 'sleep_429': '0', 'retries': 2, 'http_timeout': 10,
        'ignore_user_config': True}


def test_gallery_dl_command_has_rate_limits_and_archive(tmp_path):
    cmd = scrape.gallery_dl_command('http://x/y.jpg', tmp_path, {**scrape.DEFAULTS, 'max_per_source': 7})
    assert cmd[1:3] == ['-m', 'gallery_dl']  # a subprocess, never an import (licence)
    for flag in ('--download-archive', '--sleep', '--sleep-request', '--sleep-429', '--retries',
                 '--http-timeout', '--write-metadata'):
        assert flag in cmd
    assert cmd[cmd.index('--range') + 1] == '1-7'
    assert cmd[cmd.index('--download-archive') + 1] == str(tmp_path / scrape.ARCHIVE)


def test_normalise_sources_rejects_bad_kind_and_url():
    assert scrape.normalise_sources(['http://h/a.jpg'])[0]['kind'] == 'painting'
    with pytest.raises(ValueError, match='kind'):
        scrape.normalise_sources([{'url': 'http://h/a.jpg', 'kind': 'anime'}])
    with pytest.raises(ValueError, match='not an http'):
        scrape.normalise_sources([{'url': 'ftp://h/a.jpg', 'kind': 'photo'}])


def test_scrape_local_server(server, tmp_path):
    out = tmp_path / 'scrape'
    sources = [{'url': server.url('a.jpg'), 'kind': 'photo'},
               {'url': server.url('busy.jpg'), 'kind': 'painting'},
               {'url': server.url('broken.jpg'), 'kind': 'painting'},
               {'url': server.url('missing.jpg'), 'kind': 'photo'},
               {'url': server.url('b.jpg'), 'kind': 'painting'},
               {'url': server.url('flaky.jpg'), 'kind': 'photo'}]
    summary = scrape.run(None, out, {**FAST, 'sources': sources})

    files = iter_images(out)
    names = sorted(p.name.split('_', 2)[2] for p in files)
    assert names == ['a.jpg', 'b.jpg', 'broken.jpg', 'busy.jpg', 'flaky.jpg']  # 429/503 retried, 404 not saved
    assert server.hits['/busy.jpg'] == 2 and server.hits['/flaky.jpg'] == 2
    # bytes arrive unchanged (the truncated one too: judging it is clean's job)
    for p in files:
        assert p.read_bytes() == server.files['/' + p.name.split('_', 2)[2]]
    # sidecar: kind + source per file
    by_name = {p.name.split('_', 2)[2]: read_sidecar(p) for p in files}
    assert by_name['a.jpg']['kind'] == 'photo' and by_name['b.jpg']['kind'] == 'painting'
    assert by_name['busy.jpg']['source'] == server.url('busy.jpg')
    assert by_name['a.jpg']['extractor'] == 'directlink'

    rep = json.loads((out / 'report.json').read_text())
    rows = rep['files']
    assert sum(r['status'] == 'kept' for r in rows) == 5
    bad = [r for r in rows if r['status'] == 'rejected']
    assert len(bad) == 1 and bad[0]['path'] == server.url('missing.jpg') and '404' in bad[0]['reason']
    assert summary['by_kind'] == {'photo': 2, 'painting': 3}
    assert (out / 'report' / 'kept.png').exists()

    # re-run: the archive means no image is requested again, and nothing changes
    hits_before = dict(server.hits)
    summary2 = scrape.run(None, out, {**FAST, 'sources': sources})
    for path in ('/a.jpg', '/b.jpg', '/busy.jpg', '/broken.jpg', '/flaky.jpg'):
        assert server.hits[path] == hits_before[path], path
    assert summary2['new'] == 0 and summary2['kept'] == 5
    assert sorted(iter_images(out)) == sorted(files)
