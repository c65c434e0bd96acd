"""TensorBoard scalars without TensorFlow: WORKDIR/events.out.tfevents.<time>.<host>.<pid>.

TensorBoard reads a file of TFRecord-framed ``Event`` protos: each record is the data length
(uint64, little-endian), the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of
the data. The first event carries ``file_version 'brain.Event:2'``; each scalar is a ``Summary``
value with ``simple_value``. The protos come from the ``tensorboard`` package (protobuf only);
TensorFlow, which clu's writer imports, would add ~0.5 GiB to the training process.
"""
from __future__ import annotations

import os
import pathlib
import socket
import struct
import time
from typing import Mapping

__all__ = ['EventWriter', 'crc32c', 'masked_crc32c']


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return tuple(table)


_TABLE = _crc32c_table()  # constant lookup table


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord framing uses."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventWriter:
    """Scalars for TensorBoard, written by one process (``enabled=False`` writes nothing).

    ``write_scalars(step, {'Loss/G/loss': 0.7, ...})`` appends one event per value; ``flush`` and
    ``close`` push them to the file, which TensorBoard can read while training runs.
    """

    def __init__(self, logdir: str | os.PathLike, enabled: bool = True) -> None:
        self.path: pathlib.Path | None = None
        self._file = None
        if not enabled:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        logdir = pathlib.Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stem = f'events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}'
        for n in range(1000):  # a new file per writer: never appends to (or replaces) another run's
            self.path = logdir / f'{stem}.{n}.v2'
            try:
                self._file = open(self.path, 'xb')
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f'{logdir}: no free event file name {stem}.*.v2')
        self._write(event_pb2.Event(wall_time=now, file_version='brain.Event:2'))
        self.flush()

    def _write(self, event: object) -> None:
        data = event.SerializeToString()
        header = struct.pack('<Q', len(data))
        self._file.write(header + struct.pack('<I', masked_crc32c(header)) + data
                         + struct.pack('<I', masked_crc32c(data)))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """One event with a simple_value per scalar, at ``step``."""
        if self._file is None:
            return
        summary_pb2 = self._summary_pb2
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary_pb2.Summary(value=values)))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
