"""scrape stage against servers on 127.0.0.1 started here (no internet), through gallery-dl itself.

* gallery-dl's direct-link extractor on a local HTTP server: a 404 in each of two sources, a 503
  answered once then OK, an HTML login page served as an image, a video, a re-run (archive), a kind
  changed in the config, a probe;
* gallery-dl's real ArtStation extractor, through a local HTTPS proxy that answers for
  www.artstation.com and its CDN (``--proxy`` + ``--no-check-certificate``, a self-signed test
  certificate made by ``openssl`` for the test run): the 8k -> 4k -> large image fallback, two images whose
  URLs end in the same file name, a 3D view and a video that must not be fetched;
* gallery-dl runs that die before downloading (bad extra argument, missing / broken config), an old
  gallery-dl, and stopping data-prep with SIGINT / SIGTERM while gallery-dl is downloading.
"""
from __future__ import annotations

import http.server
import io
import json
import os
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import cli, scrape
from data_prep.config import DataPrepError
from data_prep.report import iter_images, read_sidecar

ROOT = Path(__file__).resolve().parents[1]
FAST = {'sleep': '0', 'sleep_request': '0', 'sleep_429': '0', 'retries': 2, 'http_timeout': 10,
        'ignore_user_config': True}


def _jpeg(seed: int, size=(48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)).save(b, 'JPEG', quality=90)
    return b.getvalue()


LOGIN_PAGE = b'<!DOCTYPE html><html><head><title>Log in</title></head><body><form>password</form></body></html>'


class Routes:
    """What the fake sites answer: path -> list of (status, content type, body), one per request (the
    last repeats); counts requests per path; ``slow`` paths wait until ``release`` is set."""

    def __init__(self, routes: dict):
        self.routes, self.hits = routes, {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.slow: set = set()
        self.slow_hit = threading.Event()

    def answer(self, handler, host: str = '') -> None:
        path = handler.path.split('?')[0]
        key = host + path
        with self.lock:
            n = self.hits[key] = self.hits.get(key, 0) + 1
        if key in self.slow:
            self.slow_hit.set()
            self.release.wait(60)
        seq = self.routes.get(key)
        if seq is None:
            handler.send_error(404)
            return
        status, ctype, body = seq[min(n, len(seq)) - 1]
        handler.send_response(status)
        handler.send_header('Content-Type', ctype)
        handler.send_header('Content-Length', str(len(body)))
        handler.send_header('Retry-After', '0')
        handler.end_headers()
        handler.wfile.write(body)


def _handler(routes: Routes, host_of=lambda h: ''):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_GET(self):  # noqa: N802
            routes.answer(self, host_of(self))

        do_POST = do_GET  # noqa: N815

        def log_message(self, *a):
            pass
    return H


class Server:
    """A plain HTTP server on 127.0.0.1 for gallery-dl's direct-link extractor."""

    def __init__(self, routes: Routes):
        self.routes = routes
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _handler(routes))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None     # a client killed mid-request is expected here
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/{path}'

    def close(self):
        self.routes.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for www.artstation.com and *.artstation.com, made for this test run by the
    openssl command, so no private key lives in the repository and none expires."""
    cert, key = directory / 'tls-cert.pem', directory / 'tls-key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                    '-subj', '/CN=www.artstation.com',
                    '-addext', 'subjectAltName=DNS:www.artstation.com,DNS:*.artstation.com',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
    return cert, key


class TLSProxy:
    """An HTTP proxy on 127.0.0.1 that answers CONNECT itself (TLS with the test certificate), so
    gallery-dl's extractors for a real site talk to ``routes`` keyed by host + path."""

    def __init__(self, routes: Routes, directory: Path):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*_self_signed_certificate(directory))
        inner = _handler(routes, host_of=lambda h: h.server.host)

        class Tunnel(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline().decode('latin-1')
                while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                    pass
                method, target = line.split()[:2]
                if method != 'CONNECT':
                    self.wfile.write(b'HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n')
                    return
                self.wfile.write(b'HTTP/1.1 200 Connection Established\r\n\r\n')
                self.wfile.flush()
                tls = ctx.wrap_socket(self.connection, server_side=True)
                fake = types_ns(host=target.split(':')[0])
                inner(tls, self.client_address, fake)

        class Srv(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, *a):
                pass
        self.routes = routes
        self.srv = Srv(('127.0.0.1', 0), Tunnel)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.srv.server_address[1]}'

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def types_ns(**kw):
    import types
    return types.SimpleNamespace(**kw)


def _records(out: Path) -> dict[str, dict]:
    return {r['path']: r for r in json.loads((out / 'report.json').read_text())['files']}


# -------------------------------------------------------------------------------------------- direct links

@pytest.fixture()
def site():
    routes = Routes({
        '/a.jpg': [(200, 'image/jpeg', _jpeg(1))],
        '/b.jpg': [(200, 'image/jpeg', _jpeg(2))],
        '/flaky.jpg': [(503, 'text/plain', b''), (200, 'image/jpeg', _jpeg(3))],
        '/busy.jpg': [(429, 'text/plain', b''), (200, 'image/jpeg', _jpeg(4))],
        '/login.jpg': [(200, 'text/html', LOGIN_PAGE)],
        '/clip.mp4': [(200, 'video/mp4', b'\x00\x00\x00\x18ftypmp42' + b'\x00' * 100)],
    })
    s = Server(routes)
    yield s
    s.close()


def test_gallery_dl_command_and_run_config(tmp_path):
    cfg = {**scrape.DEFAULTS, 'max_per_source': 7, 'cookies': '/c.txt', 'cookies_from_browser': 'firefox'}
    cmd = scrape.gallery_dl_command('http://x/y.jpg', tmp_path, cfg, tmp_path / 'run.json', tmp_path / 'r.txt')
    assert cmd[1:3] == ['-m', 'gallery_dl']  # a subprocess, never an import (licence)
    for flag in ('--download-archive', '--sleep', '--sleep-request', '--sleep-429', '--retries',
                 '--http-timeout', '--write-metadata', '-C', '--cookies-from-browser'):
        assert flag in cmd
    assert cmd[cmd.index('--range') + 1] == '1-7'
    assert cmd[cmd.index('--download-archive') + 1] == str(tmp_path / scrape.ARCHIVE)
    assert '--download-archive' not in scrape.gallery_dl_command('http://x', tmp_path, {**cfg, 'probe': 3})
    rc = scrape.run_config('abcd1234', cfg, tmp_path / 'l.log')['extractor']
    assert rc['artstation']['filename'] == '{category}_{id}_{asset[id]}.{extension}'
    assert rc['artstation']['mviews'] is False and rc['artstation']['videos'] is False
    assert rc['deviantart']['journals'] == 'none' and 'mp4' not in rc['image-filter']


def test_normalise_sources_rejects_bad_kind_and_url():
    assert scrape.normalise_sources(['http://h/a.jpg'])[0]['kind'] == 'painting'
    with pytest.raises(ValueError, match='kind'):
        scrape.normalise_sources([{'url': 'http://h/a.jpg', 'kind': 'anime'}])
    with pytest.raises(ValueError, match='not an http'):
        scrape.normalise_sources([{'url': 'ftp://h/a.jpg', 'kind': 'photo'}])


def test_every_failure_is_a_record_naming_url_and_status(site, tmp_path):
    out = tmp_path / 'scrape'
    sources = [{'url': site.url('a.jpg'), 'kind': 'photo'},
               {'url': site.url('missing1.jpg'), 'kind': 'photo'},
               {'url': site.url('flaky.jpg'), 'kind': 'photo'},       # 503, then OK
               {'url': site.url('login.jpg'), 'kind': 'painting'},    # right after: an HTML login page
               {'url': site.url('busy.jpg'), 'kind': 'painting'},     # 429, then OK
               {'url': site.url('missing2.jpg'), 'kind': 'painting'},
               {'url': site.url('clip.mp4'), 'kind': 'painting'}]     # not an image: never fetched
    s = scrape.run(None, out, {**FAST, 'sources': sources})
    recs = _records(out)
    kept = {Path(p).name.split('_', 2)[2]: r for p, r in recs.items() if r['status'] == 'kept'}
    assert sorted(kept) == ['a.jpg', 'busy.jpg', 'flaky.jpg']
    assert site.routes.hits['/flaky.jpg'] == 2 and site.routes.hits['/busy.jpg'] == 2
    bad = {p: r['reason'] for p, r in recs.items() if r['status'] == 'rejected'}
    assert bad.pop(site.url('missing1.jpg')) == 'download failed: HTTP 404 Not Found'
    assert bad.pop(site.url('missing2.jpg')) == 'download failed: HTTP 404 Not Found'
    assert bad.pop(site.url('login.jpg')).startswith('download failed: HTTP 200 with an HTML page')
    assert bad.pop(site.url('clip.mp4')).startswith('source yielded no files')
    assert bad == {}                                       # the 503-then-OK file is not a failure
    assert '/clip.mp4' not in site.routes.hits
    for p in kept.values():                                # bytes and sidecar: kind, source, url
        f = Path(p['path'])
        side = read_sidecar(f)
        assert side['source'] == side['url'] == site.url(f.name.split('_', 2)[2]) and side['extractor'] == 'directlink'
        assert f.read_bytes() == site.routes.routes['/' + f.name.split('_', 2)[2]][-1][2]
    assert s['by_kind'] == {'photo': 2, 'painting': 1}
    assert s['sources'][site.url('missing1.jpg')]['failed'] == 1
    assert len(list((out / scrape.RUNS).glob('*.log'))) == 7          # one log per source run
    assert (out / 'report' / 'kept.png').exists()

    # re-run: the archive means no image is requested again; a kind changed in the config relabels
    hits = dict(site.routes.hits)
    sources[0]['kind'] = 'painting'
    s2 = scrape.run(None, out, {**FAST, 'sources': sources})
    for path in ('/a.jpg', '/flaky.jpg', '/busy.jpg'):
        assert site.routes.hits[path] == hits[path], path
    assert s2['new'] == 0 and s2['kept'] == 3 and s2['relabelled'] == 1
    a = next(Path(p) for p in _records(out) if p.endswith('_a.jpg'))
    assert read_sidecar(a)['kind'] == 'painting' and _records(out)[str(a)]['extra']['kind'] == 'painting'
    assert sorted(iter_images(out)) == sorted(Path(p['path']) for p in kept.values())


def test_runs_that_die_before_downloading_are_records_and_an_error(site, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    broken = tmp_path / 'broken.json'
    broken.write_text('{not json')
    cases = {'bad_arg': ({'extra_args': ['--no-such-flag']}, 'gallery-dl exit 2', 'unrecognized arguments'),
             'missing_config': ({'gallery_dl_config': str(tmp_path / 'nope.json')}, 'gallery-dl exit', 'No such file'),
             'broken_config': ({'gallery_dl_config': str(broken)}, 'gallery-dl exit', 'JSONDecodeError')}
    for name, (extra, head, detail) in cases.items():
        out = tmp_path / name
        with pytest.raises(DataPrepError, match='no source yielded a file'):
            scrape.run(None, out, {**FAST, **extra, 'sources': [site.url('a.jpg')]})
        rec = _records(out)[site.url('a.jpg')]
        assert rec['status'] == 'rejected' and head in rec['reason'] and detail in rec['reason'], (name, rec['reason'])
    cfg = tmp_path / 'c.json'
    cfg.write_text(json.dumps({'sources': [site.url('a.jpg')], 'scrape': {**FAST, 'extra_args': ['--no-such-flag']}}))
    assert cli.main(['scrape', '-o', str(tmp_path / 'cli'), '-c', str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'data-prep: error: {(tmp_path / "cli").resolve()}: no source yielded a file')
    assert '\n' not in err and 'unrecognized arguments' in err


def test_old_gallery_dl_is_refused(site, tmp_path, monkeypatch):
    monkeypatch.setattr(scrape, 'gallery_dl_version', lambda: (1, 26, 0))
    with pytest.raises(DataPrepError, match=r'version 1\.26\.0 is too old: data-prep needs >= 1\.30\.1'):
        scrape.run(None, tmp_path / 'o', {**FAST, 'sources': [site.url('a.jpg')]})
    monkeypatch.undo()
    assert scrape.gallery_dl_version() >= scrape.MIN_GALLERY_DL      # the one installed here is fine


def test_probe(site, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    cfg = tmp_path / 'c.json'
    cfg.write_text(json.dumps({'sources': [site.url('a.jpg'), site.url('b.jpg')], 'scrape': FAST}))
    out = tmp_path / 'scrape'
    assert cli.main(['scrape', '-o', str(out), '-c', str(cfg), '--probe']) == 0
    text = capsys.readouterr().out
    assert text.count('probe: ok') == 2 and '2 of 2 sources reachable' in text
    assert len(iter_images(out / '.probe')) == 2 and not (out / scrape.ARCHIVE).exists()
    assert not (out / 'report.json').exists()                # the real run's folder is untouched
    cfg.write_text(json.dumps({'sources': [site.url('a.jpg'), site.url('gone.jpg')], 'scrape': FAST}))
    assert cli.main(['scrape', '-o', str(tmp_path / 's2'), '-c', str(cfg), '--probe', '1']) == 1
    assert 'probe: FAILED' in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ ArtStation

def _artstation_routes() -> Routes:
    cdn = 'cdna.artstation.com/p/assets/images/images/000/001'
    img = lambda n, sz: f'https://{cdn}/{n}/{sz}/pic.jpg?1600000000'  # noqa: E731
    project = {
        'id': 4242, 'hash_id': 'AbCdE', 'title': 'Elf', 'description': '', 'created_at': '2024-01-02T03:04:05.000Z',
        'user': {'username': 'tester'},
        'assets': [
            {'id': 11, 'has_image': True, 'has_embedded_player': False, 'image_url': img('001', 'large'), 'asset_type': 'image'},
            {'id': 12, 'has_image': True, 'has_embedded_player': True, 'asset_type': 'marmoset',
             'image_url': 'https://cdna.artstation.com/p/assets/marmosets/images/000/001/003/large/m.jpg',
             'player_embedded': '<iframe src="https://www.artstation.com/embed/3d"></iframe>'},
            {'id': 13, 'has_image': True, 'has_embedded_player': True, 'asset_type': 'video_clip',
             'image_url': 'https://cdna.artstation.com/p/assets/video_clips/images/000/001/004/large/v.jpg',
             'player_embedded': '<iframe src="https://www.artstation.com/embed/video"></iframe>'},
            {'id': 14, 'has_image': True, 'has_embedded_player': False, 'image_url': img('002', 'large'), 'asset_type': 'image'},
        ]}
    js = lambda o: [(200, 'application/json', json.dumps(o).encode())]  # noqa: E731
    return Routes({
        'www.artstation.com/projects/AbCdE.json': js(project),
        'www.artstation.com/users/tester/quick.json': js({'id': 1, 'username': 'tester', 'full_name': 'T'}),
        f'{cdn}/001/large/pic.jpg': [(200, 'image/jpeg', _jpeg(11))],   # 8k and 4k: 404 (not routed)
        f'{cdn}/002/large/pic.jpg': [(200, 'image/jpeg', _jpeg(14))],   # same file name, other image
        'www.artstation.com/embed/3d': [(200, 'text/html', b'<html>marmoset.embed("x.mview",</html>')],
        'www.artstation.com/embed/video': [(200, 'text/html', b'<html><video id="video" src="v.mp4"></html>')],
    })


def test_artstation_fallback_names_and_skipped_media(tmp_path):
    """Through gallery-dl's own ArtStation extractor: the image is tried at 8k and 4k (404) and found
    at 'large' -- a success, not a failure; two images whose URLs end in pic.jpg get two names (the
    asset ids); the 3D view and the video are not fetched, and max_per_source counts the images."""
    routes = _artstation_routes()
    proxy = TLSProxy(routes, tmp_path)
    try:
        out = tmp_path / 'scrape'
        s = scrape.run(None, out, {**FAST, 'max_per_source': 2, 'sources': [
            {'url': 'https://www.artstation.com/artwork/AbCdE', 'kind': 'painting'}],
            'extra_args': ['--proxy', proxy.url, '--no-check-certificate']})
    finally:
        proxy.close()
    cdn = 'cdna.artstation.com/p/assets/images/images/000/001'
    assert routes.hits.get(f'{cdn}/001/8k/pic.jpg') == 1 and routes.hits.get(f'{cdn}/001/4k/pic.jpg') == 1
    assert routes.hits[f'{cdn}/001/large/pic.jpg'] == 1 and routes.hits[f'{cdn}/002/large/pic.jpg'] == 1
    assert not any('embed' in k for k in routes.hits)                    # no 3D view, no video
    recs = _records(out)
    assert all(r['status'] == 'kept' for r in recs.values()), recs
    names = sorted(Path(p).name for p in recs)
    assert names == ['artstation_4242_11.jpg', 'artstation_4242_14.jpg']
    assert Path(out / names[0]).read_bytes() == _jpeg(11) and Path(out / names[1]).read_bytes() == _jpeg(14)
    assert read_sidecar(out / names[0])['extractor'] == 'artstation'
    assert s['kept'] == 2 and s['rejected'] == 0


# ------------------------------------------------------------------------------------------------ signals

def _children(pid: int) -> list[int]:
    kids = []
    for d in Path('/proc').iterdir():
        if d.name.isdigit():
            try:
                stat = (d / 'stat').read_text()
            except OSError:
                continue
            if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return (Path('/proc') / str(pid) / 'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


@pytest.mark.parametrize('sig, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_stopping_data_prep_stops_gallery_dl(site, tmp_path, sig, code):
    """Ctrl-C / SIGTERM: data-prep stops gallery-dl and exits 130 / 143. Even SIGKILL (no clean-up
    possible) takes gallery-dl down (the kernel's parent-death signal), so no orphan keeps writing
    to the archive."""
    site.routes.routes['/slow.jpg'] = [(200, 'image/jpeg', _jpeg(9))]
    site.routes.slow.add('/slow.jpg')
    cfg = tmp_path / 'c.json'
    cfg.write_text(json.dumps({'sources': [site.url('slow.jpg')], 'scrape': FAST}))
    out = tmp_path / 'scrape'
    env = {**os.environ, 'DATA_PREP_QUIET': '1'}
    p = subprocess.Popen([sys.executable, '-m', 'data_prep', 'scrape', '-o', str(out), '-c', str(cfg)],
                         cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert site.routes.slow_hit.wait(60), 'gallery-dl never asked for the file'
        kids = [k for k in _children(p.pid) if _alive(k)]
        assert len(kids) == 1                                        # gallery-dl, downloading
        # a second scraper on the same folder is refused while this one runs
        second = subprocess.run([sys.executable, '-m', 'data_prep', 'scrape', '-o', str(out), '-c', str(cfg)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and 'another data-prep scrape is running on this folder' in second.stderr
        p.send_signal(sig)
        rc = p.wait(30)
        err = p.stderr.read()
        assert rc == code and 'Traceback' not in err
        if sig != signal.SIGKILL:
            assert f'interrupted by {signal.Signals(sig).name}' in err
        deadline = time.time() + 10
        while _alive(kids[0]) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(kids[0])                                   # gallery-dl stopped with it
    finally:
        site.routes.release.set()
        if p.poll() is None:
            p.kill()
