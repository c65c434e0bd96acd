"""data_prep.report: report.json round trip, the append-only journal (crash safety, O(1) per record),
listing rules, sidecars, contact sheets, and the stage driver (settings validation, locking, inputs
from the input stage's kept list, stale outputs, one error / contact-sheet policy)."""
from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import report as R
from data_prep.config import DataPrepError
from data_prep.report import (FileRecord, StageReport, iter_images, output_exists, read_sidecar, scan_folder,
                              write_contact_sheets, write_sidecar)


def test_round_trip_and_resume(tmp_path):
    out = tmp_path / 'o' / 'nested'
    rep = StageReport.open(out, 'clean')            # creates the folder
    assert out.is_dir() and rep.records() == []
    a = FileRecord('/in/a.jpg', 'kept', output=str(out / 'a.jpg'), extra={'kind': 'photo', 'w': 3})
    b = FileRecord('/in/b.jpg', 'rejected', 'too_small: 3x3')
    c = FileRecord('/in/c.jpg', 'duplicate', duplicate_of='/in/a.jpg')
    for r in (a, b, c):
        rep.add(r)
    rep.add(FileRecord('/in/b.jpg', 'rejected', 'empty: 0 bytes'))   # replaces, no second row
    rep.save({'n': 3})
    data = json.loads((out / 'report.json').read_text())
    assert data['stage'] == 'clean' and data['summary'] == {'n': 3}
    assert [r['path'] for r in data['files']] == ['/in/a.jpg', '/in/b.jpg', '/in/c.jpg']
    assert data['files'][1]['reason'] == 'empty: 0 bytes'
    assert set(data['files'][0]) >= {'path', 'status', 'reason', 'output', 'duplicate_of', 'extra'}
    assert not (out / R.JOURNAL_NAME).exists()        # compacted
    again = StageReport.open(out, 'clean')
    assert again.records() == [a, FileRecord('/in/b.jpg', 'rejected', 'empty: 0 bytes'), c]
    assert again.done('/in/c.jpg') and not again.done('/in/zzz.jpg')
    assert again.get('/in/a.jpg').extra == {'kind': 'photo', 'w': 3}
    assert again.summary == {'n': 3}
    assert again.counts()['rejected:empty'] == 1
    with pytest.raises(DataPrepError, match='stage'):
        StageReport.open(out, 'dedup')               # another stage's report is never clobbered


def test_bad_status_rejected():
    with pytest.raises(ValueError):
        FileRecord('/x', 'maybe')


def test_journal_is_append_only_and_survives_a_crash(tmp_path):
    rep = StageReport.open(tmp_path, 'clean')
    rep.add(FileRecord('/in/0.jpg', 'kept', output='/o/0.jpg'))
    rep.save({'first': True})
    size0 = (tmp_path / 'report.json').stat().st_size
    for i in range(1, 200):
        rep.add(FileRecord(f'/in/{i}.jpg', 'rejected', 'x'))
    rep.remove('/in/5.jpg')
    # nothing rewrote report.json: each record was one appended line
    assert (tmp_path / 'report.json').stat().st_size == size0
    lines = (tmp_path / R.JOURNAL_NAME).read_text().splitlines()
    assert len(lines) == 200 and json.loads(lines[-1]) == {'remove': '/in/5.jpg'}
    # a crash (no save, a torn last line) loses nothing that was added
    with open(tmp_path / R.JOURNAL_NAME, 'a') as f:
        f.write('{"path": "/in/torn.jpg", "sta')
    again = StageReport.open(tmp_path, 'clean')
    paths = [r.path for r in again.records()]
    assert len(paths) == 199 and '/in/5.jpg' not in paths and '/in/199.jpg' in paths
    assert again.summary == {'first': True}
    assert R.load_records(tmp_path).keys() == again._records.keys()   # the read-only view agrees


def test_corrupt_report_moved_aside(tmp_path, capsys):
    (tmp_path / 'report.json').write_text('{"files": [')
    rep = StageReport.open(tmp_path, 'clean')
    assert rep.records() == []
    assert (tmp_path / 'report.json.corrupt').read_text() == '{"files": ['
    assert 'moved aside' in capsys.readouterr().err


def test_iter_images_rules(tmp_path):
    for rel in ['b.jpg', 'a/c.png', 'a/c.png.json', 'noext', 'report.json', 'report/kept.png', '.hidden.jpg',
                '.cache/x.jpg', 'x.jpg.part', '.archive.sqlite3', 'deep/report/keep.jpg', '.report.jsonl']:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b'1')
    os.symlink(tmp_path / 'gone.jpg', tmp_path / 'link.jpg')
    got = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert got == ['a/c.png', 'b.jpg', 'deep/report/keep.jpg', 'noext']
    files, dangling, hidden = scan_folder(tmp_path)
    assert [p.name for p in dangling] == ['link.jpg']
    assert sorted(p.name for p in hidden) == ['.cache', '.hidden.jpg']
    with pytest.raises(DataPrepError, match='does not exist'):
        iter_images(tmp_path / 'missing')


def test_sidecars(tmp_path):
    img = tmp_path / 'x.jpg'
    img.write_bytes(b'')
    assert read_sidecar(img) == {}
    write_sidecar(img, {'kind': 'photo', 'source': 'http://h/x'})
    assert read_sidecar(img) == {'kind': 'photo', 'source': 'http://h/x'}
    (tmp_path / 'y.jpg.json').write_text('not json')
    with pytest.raises(ValueError, match='not JSON'):
        read_sidecar(tmp_path / 'y.jpg')


def test_output_exists(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'1')
    assert output_exists(FileRecord('/i', 'kept', output=str(tmp_path / 'a.png')), tmp_path)
    assert output_exists(FileRecord('/i', 'kept', output='a.png'), tmp_path)      # relative to output dir
    assert not output_exists(FileRecord('/i', 'kept', output=str(tmp_path / 'gone.png')), tmp_path)
    assert not output_exists(FileRecord('/i', 'kept', output=str(tmp_path / 'a.png'),
                                        extra={'outputs': [str(tmp_path / 'a.png'), str(tmp_path / 'b.png')]}), tmp_path)
    assert output_exists(FileRecord('/i', 'rejected', 'r'), tmp_path)
    assert not output_exists(None, tmp_path)


def test_contact_sheets(tmp_path):
    recs = []
    for i in range(5):
        p = tmp_path / f'{i}.png'
        Image.fromarray(np.full((40, 30, 3), 40 * i, np.uint8)).save(p)
        recs.append(FileRecord(str(p), 'kept', output=str(p), extra={'kind': 'photo'}))
    (tmp_path / 'bad.jpg').write_bytes(b'<html>')
    recs += [FileRecord(str(tmp_path / 'bad.jpg'), 'rejected', 'html: page'),
             FileRecord(str(tmp_path / 'gone.jpg'), 'rejected', 'empty: 0 bytes'),
             FileRecord(str(tmp_path / '1.png'), 'duplicate', duplicate_of=str(tmp_path / '0.png'))]
    paths = write_contact_sheets(recs, tmp_path / 'report', 'test', max_per_sheet=4)
    assert [p.name for p in paths] == ['kept.png', 'rejected.png']
    kept = Image.open(paths[0])
    assert kept.mode == 'RGB' and kept.width > 4 * 128                      # 4 thumbnails in a row
    assert write_contact_sheets([], tmp_path / 'r2', 'empty') == []


# ---------------------------------------------------------------------------------------- the driver

def _toy_stage(calls: list):
    """A stage that copies each input's bytes to OUTPUT/<name>.out (kept) unless it is empty."""
    mod = types.ModuleType('toy')
    mod.STAGE = 'toy'
    mod.DEFAULTS = {'suffix': '.out', 'nested': {'a': 1, 'b': 2}, 'workers': 0}
    mod.VOLATILE = ('workers',)

    def process(run):
        for p in run.inputs:
            if run.up_to_date(p):
                continue
            calls.append(p.name)
            if p.stat().st_size == 0:
                run.add(FileRecord(str(p), 'rejected', 'empty: 0 bytes'))
                continue
            out = run.output_dir / (p.name + run.settings['suffix'])
            out.write_bytes(p.read_bytes())
            run.add(FileRecord(str(p), 'kept', output=str(out)))
        return {'toy': True}
    mod.process = process
    return mod


def test_driver_validates_nested_settings(tmp_path):
    (tmp_path / 'in').mkdir()
    mod = _toy_stage([])
    with pytest.raises(DataPrepError, match="unknown config key 'c'") as e:
        R.run_stage(mod, tmp_path / 'in', tmp_path / 'out', {'nested': {'c': 3}})
    assert e.value.file == 'toy settings.nested'
    with pytest.raises(DataPrepError, match="unknown config key 'bogus'"):
        R.run_stage(mod, tmp_path / 'in', tmp_path / 'out', {'bogus': 1})
    with pytest.raises(DataPrepError, match='must be a dict'):
        R.run_stage(mod, tmp_path / 'in', tmp_path / 'out', {'nested': 5})
    s = R.run_stage(mod, tmp_path / 'in', tmp_path / 'out', {'nested': {'b': 5}})
    assert s['config']['nested'] == {'a': 1, 'b': 5} and s['toy'] is True
    with pytest.raises(DataPrepError, match='input folder does not exist'):
        R.run_stage(mod, tmp_path / 'nope', tmp_path / 'out')


def test_driver_reruns_exactly_what_changed(tmp_path):
    inp = tmp_path / 'in'
    inp.mkdir()
    for n in 'abc':
        (inp / f'{n}.bin').write_bytes(n.encode() * 10)
    calls: list = []
    mod = _toy_stage(calls)
    out = tmp_path / 'out'
    s = R.run_stage(mod, inp, out)
    assert sorted(calls) == ['a.bin', 'b.bin', 'c.bin'] and s['processed_now'] == 3 and s['kept'] == 3
    calls.clear()
    assert R.run_stage(mod, inp, out, {'workers': 4})['processed_now'] == 0 and calls == []   # volatile key
    (inp / 'b.bin').write_bytes(b'changed!')                 # a changed input is redone
    R.run_stage(mod, inp, out)
    assert calls == ['b.bin'] and (out / 'b.bin.out').read_bytes() == b'changed!'
    calls.clear()
    R.run_stage(mod, inp, out, {'suffix': '.new'})            # a changed setting redoes all, old outputs go
    assert sorted(calls) == ['a.bin', 'b.bin', 'c.bin']
    assert sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(('.', 'report'))) == \
        ['a.bin.new', 'b.bin.new', 'c.bin.new']
    (inp / 'c.bin').unlink()                                  # a vanished input: its output goes too
    s = R.run_stage(mod, inp, out, {'suffix': '.new'})
    assert s['stale_removed'] == 1 and not (out / 'c.bin.new').exists()
    assert [Path(r['path']).name for r in json.loads((out / 'report.json').read_text())['files']] == ['a.bin', 'b.bin']


def test_driver_reads_the_input_stages_kept_list(tmp_path, capsys):
    up = tmp_path / 'up'
    up.mkdir()
    for n in ('kept1', 'kept2', 'rejected', 'stray'):
        (up / f'{n}.bin').write_bytes(b'x')
    rep = StageReport.open(up, 'clean')
    rep.add(FileRecord(str(tmp_path / 'src/1'), 'kept', output=str(up / 'kept1.bin')))
    rep.add(FileRecord(str(tmp_path / 'src/2'), 'kept', output=str(up / 'kept2.bin')))
    rep.add(FileRecord(str(tmp_path / 'src/3'), 'rejected', 'no'))
    rep.add(FileRecord(str(tmp_path / 'src/4'), 'kept', output=str(up / 'gone.bin')))
    rep.close()                                          # journal only (an interrupted input stage)
    calls: list = []
    s = R.run_stage(_toy_stage(calls), up, tmp_path / 'out')
    assert sorted(calls) == ['kept1.bin', 'kept2.bin'] and s['inputs'] == 2
    err = capsys.readouterr().err
    assert 'gone.bin: kept in' in err and 'not inputs of this stage' in err   # said, not silent


def test_driver_records_dangling_links_and_warns_on_hidden(tmp_path, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    (inp / 'a.bin').write_bytes(b'a')
    (inp / '.secret.bin').write_bytes(b'a')
    os.symlink(inp / 'nowhere.jpg', inp / 'link.jpg')
    s = R.run_stage(_toy_stage([]), inp, tmp_path / 'out')
    rows = {Path(r['path']).name: r for r in json.loads((tmp_path / 'out' / 'report.json').read_text())['files']}
    assert rows['link.jpg']['status'] == 'rejected' and rows['link.jpg']['reason'].startswith('dangling_symlink')
    assert 'skipped 1 hidden' in capsys.readouterr().err and s['warning_count'] == 1


def test_driver_lock_refuses_a_second_run(tmp_path):
    (tmp_path / 'in').mkdir()
    with R.folder_lock(tmp_path / 'out', 'test'):
        with pytest.raises(DataPrepError, match=f'another data-prep toy is running on this folder \\(pid {os.getpid()}\\)'):
            R.run_stage(_toy_stage([]), tmp_path / 'in', tmp_path / 'out')
    R.run_stage(_toy_stage([]), tmp_path / 'in', tmp_path / 'out')   # released


def test_driver_error_and_sheet_policies(tmp_path, monkeypatch, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    (inp / 'a.bin').write_bytes(b'a')
    mod = _toy_stage([])
    base = mod.process

    def fails(run):
        base(run)
        raise DataPrepError(run.input_dir, 'bad input found while working')
    mod.process = fails
    with pytest.raises(DataPrepError, match='bad input found'):
        R.run_stage(mod, inp, tmp_path / 'out')
    data = json.loads((tmp_path / 'out' / 'report.json').read_text())   # the work so far is the report
    assert len(data['files']) == 1 and 'bad input found' in data['summary']['error']

    def bug(run):
        return 1 / 0
    mod.process = bug                                    # a bug is not turned into a record or a line
    with pytest.raises(ZeroDivisionError):
        R.run_stage(mod, inp, tmp_path / 'out2')

    mod.process = base

    def broken(*a, **k):
        raise OSError('disk full')
    monkeypatch.setattr(R, 'write_contact_sheets', broken)
    s = R.run_stage(mod, inp, tmp_path / 'out3')         # sheets fail: warned, the work is kept
    assert s['contact_sheet_error'] == 'OSError: disk full' and s['kept'] == 1
    assert 'contact sheets not written' in capsys.readouterr().err
    assert json.loads((tmp_path / 'out3' / 'report.json').read_text())['summary']['kept'] == 1
