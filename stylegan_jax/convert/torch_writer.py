"""Write `torch.save`-compatible files without torch: the zip container and its pickle, by hand.

What torch.load (including `weights_only=True`) reads back, and all this writes:

    <root>/data.pkl     pickle protocol 2 of the object; each tensor is
                        `torch._utils._rebuild_tensor_v2(<storage>, offset, size, stride, False, OrderedDict())`
                        with the storage as persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
    <root>/data/<key>   the raw little-endian bytes of each storage
    <root>/version      '3', <root>/byteorder 'little', <root>/.format_version '1'

Only data-only globals are written (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
`torch.<T>Storage`), which `weights_only=True` accepts. Objects may be dicts (written as
OrderedDicts when they are `collections.OrderedDict`), lists, tuples, str, int, float, bool, None
and numpy arrays / scalars (which become tensors). The pickle is written opcode by opcode because
the standard pickler would have to import torch to name its globals.
"""
from __future__ import annotations

import collections
import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# numpy dtype -> torch legacy storage class name (what torch.save writes in the persistent id).
_STORAGE_NAMES = {
    np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage', np.dtype(np.float16): 'HalfStorage',
    np.dtype(np.int64): 'LongStorage', np.dtype(np.int32): 'IntStorage', np.dtype(np.int16): 'ShortStorage',
    np.dtype(np.int8): 'CharStorage', np.dtype(np.uint8): 'ByteStorage', np.dtype(np.bool_): 'BoolStorage',
}

_PROTO, _STOP, _MARK = b'\x80\x02', b'.', b'('
_EMPTY_DICT, _SETITEMS, _EMPTY_LIST, _APPENDS = b'}', b'u', b']', b'e'
_EMPTY_TUPLE, _TUPLE, _REDUCE, _BINPERSID = b')', b't', b'R', b'Q'
_NONE, _TRUE, _FALSE = b'N', b'\x88', b'\x89'


class _Pickle:
    """A minimal protocol-2 pickler for the types listed in the module docstring."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.storages: list[np.ndarray] = []

    def global_(self, module: str, name: str) -> None:
        self.out.write(b'c' + module.encode() + b'\n' + name.encode() + b'\n')

    def str_(self, s: str) -> None:
        b = s.encode('utf-8')
        self.out.write(b'X' + struct.pack('<I', len(b)) + b)

    def int_(self, v: int) -> None:
        if 0 <= v < 256:
            self.out.write(b'K' + bytes([v]))
        elif -2 ** 31 <= v < 2 ** 31:
            self.out.write(b'J' + struct.pack('<i', v))
        else:
            n = (v.bit_length() + 8) // 8
            self.out.write(b'\x8a' + bytes([n]) + v.to_bytes(n, 'little', signed=True))

    def tuple_(self, items: tuple) -> None:
        if not items:
            self.out.write(_EMPTY_TUPLE)
            return
        self.out.write(_MARK)
        for x in items:
            self.obj(x)
        self.out.write(_TUPLE)

    def tensor(self, a: np.ndarray) -> None:
        a = a if a.flags.c_contiguous else np.ascontiguousarray(a)  # (ascontiguousarray would make 0-d 1-d)
        if a.dtype not in _STORAGE_NAMES:
            raise TypeError(f'cannot write a tensor of dtype {a.dtype}')
        key = str(len(self.storages))
        self.storages.append(a)
        self.global_('torch._utils', '_rebuild_tensor_v2')
        self.out.write(_MARK)
        # persistent id of the storage
        self.out.write(_MARK)
        self.str_('storage')
        self.global_('torch', _STORAGE_NAMES[a.dtype])
        self.str_(key)
        self.str_('cpu')
        self.int_(int(a.size))
        self.out.write(_TUPLE + _BINPERSID)
        self.int_(0)
        self.tuple_(tuple(int(s) for s in a.shape))
        self.tuple_(tuple(int(s) // a.itemsize for s in a.strides) if a.ndim else ())
        self.out.write(_FALSE)
        self.ordered_dict({})
        self.out.write(_TUPLE + _REDUCE)

    def ordered_dict(self, d: dict) -> None:
        self.global_('collections', 'OrderedDict')
        self.out.write(_EMPTY_TUPLE + _REDUCE)
        self._items(d)

    def _items(self, d: dict) -> None:
        if d:
            self.out.write(_MARK)
            for k, v in d.items():
                self.obj(k)
                self.obj(v)
            self.out.write(_SETITEMS)

    def obj(self, x: Any) -> None:
        if x is None:
            self.out.write(_NONE)
        elif isinstance(x, (bool, np.bool_)):
            self.out.write(_TRUE if x else _FALSE)
        elif isinstance(x, (int, np.integer)):
            self.int_(int(x))
        elif isinstance(x, (float, np.floating)) and not isinstance(x, np.ndarray):
            self.out.write(b'G' + struct.pack('>d', float(x)))
        elif isinstance(x, str):
            self.str_(x)
        elif isinstance(x, np.ndarray):
            self.tensor(x)
        elif isinstance(x, collections.OrderedDict):
            self.ordered_dict(x)
        elif isinstance(x, dict):
            self.out.write(_EMPTY_DICT)
            self._items(x)
        elif isinstance(x, list):
            self.out.write(_EMPTY_LIST)
            if x:
                self.out.write(_MARK)
                for v in x:
                    self.obj(v)
                self.out.write(_APPENDS)
        elif isinstance(x, tuple):
            self.tuple_(x)
        else:
            raise TypeError(f'cannot write a {type(x).__name__} to a torch file')


def save_torch(obj: Any, path: str | os.PathLike, root: str = 'archive') -> Path:
    """Write `obj` as torch.save would (zip format), atomically (temporary file, then rename)."""
    path = Path(path)
    p = _Pickle()
    p.out.write(_PROTO)
    p.obj(obj)
    p.out.write(_STOP)
    tmp = path.with_name(path.name + '.tmp')
    try:
        # Stored, not deflated: torch reads storages in place (and can mmap them).
        with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(f'{root}/data.pkl', p.out.getvalue())
            zf.writestr(f'{root}/byteorder', 'little')
            for key, a in enumerate(p.storages):
                zf.writestr(f'{root}/data/{key}', a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes())
            zf.writestr(f'{root}/version', '3\n')
            zf.writestr(f'{root}/.format_version', '1')
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
