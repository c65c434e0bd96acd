"""TensorBoard event files written without TensorFlow (train/events.py), read back by TensorBoard."""
import sys

import numpy as np
import pytest

from stylegan_jax.train import events


def test_crc32c_known_values():
    # RFC 3720 (iSCSI) B.4 test vectors and the standard check value of CRC-32C.
    assert events.crc32c(b'123456789') == 0xE3069283
    assert events.crc32c(bytes(32)) == 0x8A9136AA
    assert events.crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    assert events.crc32c(bytes(range(32))) == 0x46DD794E


def test_tensorboard_reads_the_scalars(tmp_path):
    ea = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')
    w = events.EventWriter(tmp_path)
    w.write_scalars(1, {'Loss/G/loss': 0.5, 'Loss/D/loss': np.float32(1.25)})
    w.write_scalars(4, {'Loss/G/loss': -2.0})
    w.close()
    w2 = events.EventWriter(tmp_path)  # a second writer (resume) gets its own file
    w2.write_scalars(5, {'Loss/G/loss': 3.0})
    w2.close()
    assert w.path != w2.path and w.path.parent == tmp_path
    assert w.path.name.startswith('events.out.tfevents.')
    acc = ea.EventAccumulator(str(w.path))
    acc.Reload()  # verifies the record CRCs
    assert sorted(acc.Tags()['scalars']) == ['Loss/D/loss', 'Loss/G/loss']
    assert [(e.step, e.value) for e in acc.Scalars('Loss/G/loss')] == [(1, 0.5), (4, -2.0)]
    assert [(e.step, e.value) for e in acc.Scalars('Loss/D/loss')] == [(1, 1.25)]


def test_records_are_tfrecord_framed(tmp_path):
    """Each record: length, masked CRC of the length, data, masked CRC of the data (what TF's reader checks)."""
    import struct
    w = events.EventWriter(tmp_path)
    w.write_scalars(7, {'x': 1.0})
    w.close()
    raw, records = w.path.read_bytes(), []
    while raw:
        (n,), (c1,) = struct.unpack('<Q', raw[:8]), struct.unpack('<I', raw[8:12])
        data, (c2,) = raw[12:12 + n], struct.unpack('<I', raw[12 + n:16 + n])
        assert c1 == events.masked_crc32c(raw[:8]) and c2 == events.masked_crc32c(data)
        records.append(data)
        raw = raw[16 + n:]
    from tensorboard.compat.proto import event_pb2
    first, second = (event_pb2.Event.FromString(r) for r in records)
    assert first.file_version == 'brain.Event:2'
    assert second.step == 7 and second.summary.value[0].tag == 'x' and second.summary.value[0].simple_value == 1.0


def test_disabled_writer_writes_nothing(tmp_path):
    w = events.EventWriter(tmp_path / 'w', enabled=False)
    w.write_scalars(1, {'x': 1.0})
    w.close()
    assert not (tmp_path / 'w').exists()


def test_no_tensorflow_import():
    import subprocess
    code = ('import sys, tempfile; from stylegan_jax.train import events; '
            'w = events.EventWriter(tempfile.mkdtemp()); w.write_scalars(1, {"a": 1.0}); w.close(); '
            'print("tensorflow" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'
