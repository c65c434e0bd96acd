"""data_prep.report: report.json round trip, resume, atomic saves, listing rules, sidecars, contact sheets."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.report import (FileRecord, StageReport, iter_images, output_exists, read_sidecar,
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
    again = StageReport.open(out, 'clean')
    assert again.records() == [a, FileRecord('/in/b.jpg', 'rejected', 'empty: 0 bytes'), c]
    assert again.done('/in/c.jpg') and not again.done('/in/zzz.jpg')
    assert again.get('/in/a.jpg').extra == {'kind': 'photo', 'w': 3}
    assert again.summary == {'n': 3}
    assert again.counts()['rejected:empty'] == 1
    with pytest.raises(ValueError, match='stage'):
        StageReport.open(out, 'dedup')               # another stage's report is never clobbered


def test_bad_status_rejected():
    with pytest.raises(ValueError):
        FileRecord('/x', 'maybe')


def test_autosave_and_atomic(tmp_path):
    rep = StageReport.open(tmp_path, 'clean')
    for i in range(StageReport.AUTOSAVE_EVERY):
        rep.add(FileRecord(f'/in/{i}.jpg', 'rejected', 'x'))
    # a crash now would lose nothing: the 50th add saved
    assert len(json.loads((tmp_path / 'report.json').read_text())['files']) == StageReport.AUTOSAVE_EVERY
    assert [p.name for p in tmp_path.iterdir()] == ['report.json']   # no temp files left


def test_corrupt_report_moved_aside(tmp_path, capsys):
    (tmp_path / 'report.json').write_text('{"files": [')
    rep = StageReport.open(tmp_path, 'clean')
    assert rep.records() == []
    assert (tmp_path / 'report.json.corrupt').read_text() == '{"files": ['
    assert 'moved aside' in capsys.readouterr().err


def test_iter_images_rules(tmp_path):
    for rel in ['b.jpg', 'a/c.png', 'a/c.png.json', 'noext', 'report.json', 'report/kept.png', '.hidden.jpg',
                '.cache/x.jpg', 'x.jpg.part', '.archive.sqlite3', 'deep/report/keep.jpg']:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b'1')
    got = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert got == ['a/c.png', 'b.jpg', 'deep/report/keep.jpg', 'noext']
    with pytest.raises(FileNotFoundError):
        iter_images(tmp_path / 'missing')


def test_sidecars(tmp_path):
    img = tmp_path / 'x.jpg'
    img.write_bytes(b'')
    assert read_sidecar(img) == {}
    write_sidecar(img, {'kind': 'photo', 'source': 'http://h/x'})
    assert read_sidecar(img) == {'kind': 'photo', 'source': 'http://h/x'}
    (tmp_path / 'y.jpg.json').write_text('not json')
    assert read_sidecar(tmp_path / 'y.jpg') == {}


def test_output_exists(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'1')
    assert output_exists(FileRecord('/i', 'kept', output=str(tmp_path / 'a.png')), tmp_path)
    assert output_exists(FileRecord('/i', 'kept', output='a.png'), tmp_path)      # relative to output dir
    assert not output_exists(FileRecord('/i', 'kept', output=str(tmp_path / 'gone.png')), tmp_path)
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
