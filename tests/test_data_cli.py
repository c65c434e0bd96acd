"""data-prep CLI: single stages, config loading/overrides (unknown sections and keys, nested ones too),
one-line errors naming the file (but a bug keeps its traceback), `all` end to end against a local HTTP
server (scrape -> clean -> unique -> faces -> dedup -> build, read back with TFDS), and the contract
that a repost in the scrape folder does not become a second example."""
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
from data_prep import config as C

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
    (['--input', '{inbox}', '--output', '{out}', '--set', 'clean.bogus_key=1'], "--set clean.bogus_key=1: unknown config key 'bogus_key'", 2),
    (['--input', '{inbox}', '--output', '{out}', '--set', 'claen.min_side=1'], "--set claen.min_side=1: unknown section 'claen'", 2),
    (['--input', '{inbox}', '--output', '{out}', '--set', "faces.detectors.anime=['haar']"], "unknown config key 'anime'", 2),
    (['--input', '{inbox}', '--output', '{out}', '--set', 'faces.min_score=3'], "'min_score' must be a dict", 2),
    (['--input', '{inbox}', '--output', '{out}', '--set', 'nonsense'], 'expected section.key=value', 2),
])
def test_errors_are_one_line(inbox, tmp_path, capsys, monkeypatch, argv_tail, needle, code):
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    bad = tmp_path / 'bad.py'
    bad.write_text('x = 1\n')
    fmt = {'missing': str(tmp_path / 'nope'), 'out': str(tmp_path / 'o'), 'inbox': str(inbox), 'badcfg': str(bad)}
    rc = cli.main(['clean'] + [a.format(**fmt) for a in argv_tail])
    err = capsys.readouterr().err.strip()
    assert rc == code
    assert err.startswith('data-prep: error:') and needle in err and '\n' not in err
    assert 'clean: clean' not in err


def test_valid_nested_override(inbox, tmp_path, monkeypatch):
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    cfg = {}
    C.apply_overrides(cfg, ['faces.min_score.dlib_hog=0.5', "faces.detectors.photo=['haar']"])
    assert cfg == {'faces': {'min_score': {'dlib_hog': 0.5}, 'detectors': {'photo': ['haar']}}}
    cli._check_overrides(['faces.min_score.dlib_hog=0.5'])     # known nested key: fine


def test_a_bug_keeps_its_traceback(inbox, tmp_path, monkeypatch):
    """Bad input is one line; an unexpected exception in our code is not hidden behind one."""
    from data_prep import clean
    monkeypatch.setattr(clean, 'process', lambda run: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(['clean', '-i', str(inbox), '-o', str(tmp_path / 'o')])


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
        cfg = C.load_config(ROOT / 'configs' / 'data' / f'{name}.py')
        assert cfg['name'] == name
        C.check_config(cfg, C.STAGES, name)                  # no typo'd keys in any section
        srcs = normalise_sources(C.stage_config(cfg, 'scrape')['sources'])
        assert {s['kind'] for s in srcs} == {'photo', 'painting'}
        hosts = {s['url'].split('/')[2] for s in srcs}
        assert hosts == {'www.artstation.com', 'www.deviantart.com', 'www.pinterest.com'}
        b = C.stage_config(cfg, 'build')
        assert b['category'] == name and 0 <= b['photo_ratio'] <= 1


@pytest.mark.parametrize('stage', list(C.STAGES))
def test_unknown_stage_keys_are_one_line_errors(stage, inbox, tmp_path, capsys):
    # a misspelt key must not silently fall back to the default (e.g. photo_ration -> keep all)
    argv = [stage, '-i', str(inbox), '-o', str(tmp_path / 'o'), '--set', f'{stage}.bogus_key=1']
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'data-prep: error: --set {stage}.bogus_key=1: ') and 'bogus_key' in err and '\n' not in err
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
        "            'faces': {'size': 256}, 'build': {'resolution': 64}}\n")
    root = tmp_path / 'root'
    assert cli.main(['all', '--config', str(cfg), '--output', str(root)]) == 0
    out = capsys.readouterr().out
    assert 'scrape: kept=3' in out and 'clean: inputs=3 kept=2 rejected=1' in out and 'unique: inputs=2 kept=2' in out
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


def test_a_repost_is_not_a_second_example(tmp_path, monkeypatch):
    """Contract: `data-prep all --config CFG --output ROOT --from clean` with images in ROOT/scrape
    builds ROOT/build; a repost (mirrored + resized, or 5% cropped + re-encoded) of a photo in the
    same folder does not become a second example."""
    import data_prep_samples as S
    monkeypatch.setenv('DATA_PREP_QUIET', '1')
    root = tmp_path / 'root'
    (root / 'scrape').mkdir(parents=True)
    grace = S.grace_hopper()
    Image.fromarray(grace).save(root / 'scrape' / 'grace.png')
    (root / 'scrape' / 'grace_mirrored.jpg').write_bytes(S.repost(grace, 'mirrored_resized'))
    (root / 'scrape' / 'grace_cropped.jpg').write_bytes(S.repost(grace, 'cropped_5pct'))
    astro = np.asarray(Image.fromarray(S.astronaut()).resize((1024, 1024)))
    Image.fromarray(astro).save(root / 'scrape' / 'astronaut.jpg', quality=95)
    for f in ('grace.png', 'grace_mirrored.jpg', 'grace_cropped.jpg', 'astronaut.jpg'):
        (root / 'scrape' / (f + '.json')).write_text(json.dumps({'kind': 'photo'}))
    cfg = tmp_path / 'cat.py'
    cfg.write_text("def get_config():\n    return {'name': 'contract', 'build': {'resolution': 64}}\n")
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'all', '--config', str(cfg), '--output', str(root),
                        '--from', 'clean'], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    import tensorflow_datasets as tfds
    rows = list(tfds.as_numpy(tfds.builder_from_directory(str(root / 'build' / 'contract' / '1.0.0')).as_dataset(split='train')))
    assert len(rows) == 2                       # grace once, the astronaut once
    recs = json.loads((root / 'build' / 'report.json').read_text())['files']
    assert len(recs) == 2 and not any('grace_mirrored' in r['path'] or 'grace_cropped' in r['path'] for r in recs)
    kept = [r for r in json.loads((root / 'unique' / 'report.json').read_text())['files'] if r['status'] == 'kept']
    assert sorted(Path(r['path']).name.split('_')[0] for r in kept) == ['astronaut', 'grace']
