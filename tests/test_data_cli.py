"""data-prep CLI: single stages, config loading/overrides, one-line errors, and `all` end to end
against a local HTTP server (scrape -> clean -> faces -> dedup -> build, read back with TFDS)."""
from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import cli

ROOT = Path(__file__).resolve().parents[1]


def _photo(path: Path, seed: int = 0, size=(320, 288)) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
    Image.fromarray(img).save(path, quality=95)
    return path


@pytest.fixture()
def inbox(tmp_path):
    d = tmp_path / 'in'
    d.mkdir()
    _photo(d / 'a.jpg', 0)
    _photo(d / 'b.jpg', 1)
    (d / 'c.jpg').write_bytes(b'')
    return d


def test_clean_stage_and_set_override(inbox, tmp_path, capsys):
    out = tmp_path / 'out'
    assert cli.main(['clean', '--input', str(inbox), '--output', str(out)]) == 0
    assert 'kept=2 rejected=1' in capsys.readouterr().out
    rows = json.loads((out / 'report.json').read_text())['files']
    assert sorted(r['status'] for r in rows) == ['kept', 'kept', 'rejected']
    out2 = tmp_path / 'out2'
    assert cli.main(['clean', '-i', str(inbox), '-o', str(out2), '--set', 'clean.min_side=1000']) == 0
    rows = json.loads((out2 / 'report.json').read_text())['files']
    assert sorted(r['reason'].split(':')[0] for r in rows) == ['empty', 'too_small', 'too_small']


@pytest.mark.parametrize('argv_tail, needle, code', [
    (['--input', '{missing}', '--output', '{out}'], 'input folder does not exist', 2),
    (['--input', '{inbox}', '--output', '{inbox}'], 'must differ', 2),
    (['--input', '{inbox}', '--output', '{out}', '--config', '{missing}.py'], 'config file not found', 2),
    (['--input', '{inbox}', '--output', '{out}', '--config', '{badcfg}'], 'defines no get_config', 2),
    (['--input', '{inbox}', '--output', '{out}', '--set', 'clean.bogus_key=1'], 'unknown config keys', 1),
])
def test_errors_are_one_line(inbox, tmp_path, capsys, argv_tail, needle, code):
    bad = tmp_path / 'bad.py'
    bad.write_text('x = 1\n')
    fmt = {'missing': str(tmp_path / 'nope'), 'out': str(tmp_path / 'o'), 'inbox': str(inbox), 'badcfg': str(bad)}
    rc = cli.main(['clean'] + [a.format(**fmt) for a in argv_tail])
    err = capsys.readouterr().err.strip()
    assert rc == code
    assert err.startswith('data-prep: error:') and needle in err and '\n' not in err


def test_console_errors_have_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'dedup', '--input', str(tmp_path / 'x'),
                        '--output', str(tmp_path / 'y')], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and 'Traceback' not in p.stderr
    assert p.stderr.strip().startswith('data-prep: error:')
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'frobnicate'], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and 'invalid choice' in p.stderr


def test_broken_stage_only_breaks_itself(inbox, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'data_prep.faces', None)     # import of this stage now fails
    assert cli.main(['faces', '-i', str(inbox), '-o', str(tmp_path / 'f')]) == 1
    assert 'unavailable' in capsys.readouterr().err
    assert cli.main(['clean', '-i', str(inbox), '-o', str(tmp_path / 'c')]) == 0


def test_configs_load_and_route_sections():
    from data_prep.scrape import normalise_sources
    for name in ('witcher', 'elf'):
        cfg = cli.load_config(ROOT / 'configs' / 'data' / f'{name}.py')
        assert cfg['name'] == name
        srcs = normalise_sources(cli.stage_config(cfg, 'scrape')['sources'])
        assert {s['kind'] for s in srcs} == {'photo', 'painting'}
        hosts = {s['url'].split('/')[2] for s in srcs}
        assert hosts == {'www.artstation.com', 'www.deviantart.com', 'www.pinterest.com'}
        b = cli.stage_config(cfg, 'build')
        assert b['category'] == name and 0 <= b['photo_ratio'] <= 1
        import importlib
        for st in cli.STAGES:                                 # no typo'd keys in any section
            if st in cfg:
                assert set(cfg[st]) <= set(importlib.import_module(f'data_prep.{st}').DEFAULTS), (name, st)


@pytest.mark.parametrize('stage', ['scrape', 'clean', 'faces', 'dedup', 'build'])
def test_unknown_stage_keys_are_one_line_errors(stage, inbox, tmp_path, capsys):
    # a misspelt key must not silently fall back to the default (e.g. photo_ration -> keep all)
    argv = [stage, '-i', str(inbox), '-o', str(tmp_path / 'o'), '--set', f'{stage}.bogus_key=1']
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('data-prep: error:') and 'bogus_key' in err and '\n' not in err
    assert not (tmp_path / 'o' / 'report.json').exists()


def test_bad_config_files_name_the_file(tmp_path, capsys):
    cases = {'typo_section.py': ("def get_config():\n    return {'name': 'x', 'face': {}}\n", 'unknown config sections'),
             'not_dict.py': ("def get_config():\n    return {'name': 'x', 'clean': 3}\n", "section 'clean' must be a dict"),
             'syntax.py': ('def get_config(:\n', 'config failed to load (SyntaxError'),
             'raises.py': ('def get_config():\n    return 1 / 0\n', 'get_config() failed (ZeroDivisionError'),
             'bad.json': ('{"name": ', 'invalid JSON')}
    for fname, (text, needle) in cases.items():
        f = tmp_path / fname
        f.write_text(text)
        assert cli.main(['all', '--config', str(f), '--output', str(tmp_path / 'r')]) == 2, fname
        err = capsys.readouterr().err.strip()
        assert err.startswith(f'data-prep: error: {f}:') and needle in err and '\n' not in err, (fname, err)


@pytest.fixture()
def face_server(tmp_path):
    from skimage import data
    www = tmp_path / 'www'
    www.mkdir()
    Image.fromarray(data.astronaut()).save(www / 'astronaut.png')       # a real face (photo)
    Image.fromarray(data.coffee()).save(www / 'coffee.png')             # no face
    Image.fromarray(data.camera()).save(www / 'camera.png')             # grayscale -> clean rejects
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown()
    httpd.server_close()


def test_all_end_to_end(face_server, tmp_path, capsys):
    u = face_server
    cfg = tmp_path / 'cat.py'
    cfg.write_text(
        'def get_config():\n'
        f'    u = {u!r}\n'
        "    return {'name': 'tiny', 'category': 'tiny', 'root': 'unused',\n"
        "            'sources': [{'url': u + 'astronaut.png', 'kind': 'photo'},\n"
        "                        {'url': u + 'coffee.png', 'kind': 'painting'},\n"
        "                        {'url': u + 'camera.png', 'kind': 'photo'}],\n"
        "            'scrape': {'sleep': '0', 'sleep_request': '0', 'ignore_user_config': True},\n"
        "            'build': {'resolution': 64}}\n")
    root = tmp_path / 'root'
    assert cli.main(['all', '--config', str(cfg), '--output', str(root)]) == 0
    out = capsys.readouterr().out
    assert 'scrape: kept=3' in out and 'clean: inputs=3 kept=2 rejected=1' in out
    for st in cli.STAGES:
        assert (root / st / 'report.json').is_file(), st
    faces = json.loads((root / 'faces' / 'report.json').read_text())['files']
    assert [Path(r['path']).name.split('_', 2)[2].split('_')[0] for r in faces if r['status'] == 'kept'] == ['astronaut']
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(str(next((root / 'build').glob('tiny/*'))))
    ds = list(tfds.as_numpy(builder.as_dataset(split='train')))
    assert len(ds) == 1 and ds[0]['image'].shape == (64, 64, 3)
    assert builder.info.features['kind'].int2str(ds[0]['kind']) == 'photo'    # kind survived 5 stages
    # a re-run resumes: nothing new is downloaded, same dataset
    assert cli.main(['all', '--config', str(cfg), '--output', str(root), '--to', 'clean']) == 0
    assert 'new=0' in capsys.readouterr().out
