"""Read pickled checkpoints as data only: an allow-list unpickler and a torch-free reader of torch files.

Checkpoints from the PyTorch and TensorFlow StyleGAN2 code are pickles. Loading them the usual way
executes code from the file (StyleGAN2-ADA embeds its module sources, and any pickle can call any
global). Here every global the pickle names is looked up in an explicit allow-list of data-only
constructors; anything else raises `UnsafePickleError` naming it, before anything from the file runs.

Tensors become numpy arrays. Both torch serialisations are read without torch: the zip format
(torch >= 1.6) and the older "legacy" stream (also used inside StyleGAN2-ADA pickles through
`torch.storage._load_from_bytes`).
"""
from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

from stylegan_jax.cli_errors import CLIError


class UnsafePickleError(CLIError, pickle.UnpicklingError):
    """The pickle references a global outside the allow-list; nothing from it was executed."""


class CheckpointFormatError(CLIError, ValueError):
    """The file is not in a format we can read (or is damaged)."""


# --------------------------------------------------------------------------- records

@dataclasses.dataclass
class PersistentRecord:
    """StyleGAN2-ADA `torch_utils.persistence` object, kept as its `meta` dict (never its source)."""
    meta: dict

    @property
    def class_name(self) -> str:
        return self.meta.get('class_name', '?')

    @property
    def state(self) -> dict:
        return self.meta.get('state') or {}


class EasyDictRecord(dict):
    """`dnnlib.util.EasyDict` (a dict with attribute access): StyleGAN2-ADA's train.py passes every
    nested constructor kwarg (mapping_kwargs, synthesis_kwargs, ...) as one, so real snapshots name it.
    Read as a plain dict; any pickled instance state is ignored (EasyDict keeps none)."""

    def __setstate__(self, state: Any) -> None:
        pass


class TFNetworkRecord:
    """NVlabs `dnnlib.tflib.network.Network`, kept as its pickled state (never its build source)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: dict) -> None:
        self.state = dict(state)

    def __repr__(self) -> str:
        return f'TFNetworkRecord(name={self.state.get("name")!r})'


class ScriptObjectRecord:
    """A TorchScript object (`__torch__.*` class: a scripted module) kept as its attribute dict.

    TorchScript archives pickle every module as its class name plus a dict of attributes
    (sub-modules, parameters, buffers, flags); the class's compiled code is never loaded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = dict(state) if isinstance(state, Mapping) else {'__state__': state}

    def tensors(self, prefix: str = '') -> dict[str, np.ndarray]:
        """Every array reachable through attributes, keyed like `state_dict()` ('layers.conv1.weight')."""
        out: dict[str, np.ndarray] = {}
        for key, value in self.state.items():
            name = f'{prefix}{key}'
            if isinstance(value, np.ndarray):
                out[name] = value
            elif isinstance(value, ScriptObjectRecord):
                out.update(value.tensors(name + '.'))
        return out


class NamespaceRecord:
    """`argparse.Namespace` as a plain attribute bag."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- torch storages

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        if self.name == 'BFloat16Storage':
            import ml_dtypes  # jax dependency; numpy itself has no bfloat16
            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(_STORAGE_DTYPES[self.name])


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, backward_hooks: Any = None,
                       metadata: Any = None) -> np.ndarray:
    """Tensor as a strided view of its storage (a view so legacy storages filled later show through)."""
    del requires_grad, backward_hooks, metadata
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return storage[offset:offset + 1].reshape(())
    item = storage.itemsize
    extent = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
    if offset + extent > storage.size:
        raise CheckpointFormatError(f'tensor of size {size} runs past its storage ({storage.size} elements)')
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * item for s in stride), writeable=False)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    return _rebuild_tensor_v2(storage, offset, size, stride)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool = False, backward_hooks: Any = None) -> np.ndarray:
    return data


def _rebuild_parameter_with_state(data: np.ndarray, requires_grad: bool, backward_hooks: Any,
                                  state: Any) -> np.ndarray:
    return data


def _load_from_bytes(data: bytes) -> Any:
    return load_torch(io.BytesIO(data))


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> np.generic:
    # numpy's own scalar reducer without going through numpy internals: the bytes are the value.
    if data is None:
        return np.zeros((), dtype)[()]
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_reconstruct(cls: Any, shape: tuple, dtype: bytes | str) -> np.ndarray:
    if cls is not np.ndarray:
        raise UnsafePickleError(f'numpy _reconstruct of {cls!r} is not allowed')
    return np.ndarray.__new__(np.ndarray, shape, np.dtype('b'))


def _codecs_encode(text: str, encoding: str = 'utf-8') -> bytes:
    # Pickle protocol 2 writes bytes as _codecs.encode(str, 'latin1').
    if encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError(f'_codecs.encode with encoding {encoding!r} is not allowed')
    return text.encode('latin1')


def _dtype_class(name: str) -> Callable[..., Any]:
    """numpy >= 2 pickles dtypes as e.g. numpy.dtypes.Float32DType: map back to np.dtype."""
    return lambda *args, **kwargs: np.dtype(name)


TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter_with_state,
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('_codecs', 'encode'): _codecs_encode,
    **{('torch', name): _StorageType(name) for name in [*_STORAGE_DTYPES, 'BFloat16Storage']},
}

NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ('numpy', 'dtype'): np.dtype,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
    **{('numpy.dtypes', f'{n.capitalize()}DType'): _dtype_class(n)
       for n in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool')},
}

# dnnlib.EasyDict is defined in dnnlib/util.py, so pickles name it dnnlib.util.EasyDict.
DNNLIB_GLOBALS: dict[tuple[str, str], Any] = {
    ('dnnlib.util', 'EasyDict'): EasyDictRecord,
    ('dnnlib', 'EasyDict'): EasyDictRecord,
}

SG2ADA_GLOBALS: dict[tuple[str, str], Any] = {
    **TORCH_GLOBALS, **NUMPY_GLOBALS, **DNNLIB_GLOBALS,
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): PersistentRecord,
}

TF_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS, **DNNLIB_GLOBALS,
    ('dnnlib.tflib.network', 'Network'): TFNetworkRecord,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('_codecs', 'encode'): _codecs_encode,
}

ROSINALITY_GLOBALS: dict[tuple[str, str], Any] = {
    **TORCH_GLOBALS, **NUMPY_GLOBALS,
    ('argparse', 'Namespace'): NamespaceRecord,
}

# Everything a StyleGAN checkpoint of any supported format may name.
ALL_GLOBALS: dict[tuple[str, str], Any] = {**SG2ADA_GLOBALS, **TF_GLOBALS, **ROSINALITY_GLOBALS}


def _identity(value: Any, *args: Any) -> Any:
    return value


# TorchScript archives (e.g. the VGG16 feature network of the StyleGAN2-ADA metrics): tensors as in
# torch.save, typed containers through torch.jit._pickle helpers that only wrap plain values.
class _TorchScriptGlobals(dict):
    """The allow-list plus every `__torch__.*` class (a scripted module), which becomes a ScriptObjectRecord."""

    def __missing__(self, key: tuple[str, str]) -> Any:
        if key[0].split('.')[0] == '__torch__':
            return ScriptObjectRecord  # kept as data; the archive's compiled code is never loaded
        raise KeyError(key)


TORCHSCRIPT_GLOBALS: Mapping[tuple[str, str], Any] = _TorchScriptGlobals({
    **TORCH_GLOBALS,
    **{('torch.jit._pickle', name): _identity
       for name in ('build_intlist', 'build_doublelist', 'build_boollist', 'build_tensorlist', 'restore_type_tag')},
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals; storages come from `persistent_load`."""

    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any] = ALL_GLOBALS,
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, encoding='latin1')
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'refusing to load: the pickle references {module}.{name}, which is not an allowed '
                f'data type (nothing from the file was executed)') from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointFormatError(f'unexpected persistent id {pid!r}')
        return self._persistent(pid)


def load_pickle(file: BinaryIO, allowed: Mapping[tuple[str, str], Any] = ALL_GLOBALS) -> Any:
    """Unpickle `file` resolving only `allowed` globals (see module docstring)."""
    try:
        return RestrictedUnpickler(file, allowed).load()
    except (UnsafePickleError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error) as e:
        raise CheckpointFormatError(f'not a readable pickle ({type(e).__name__}: {e})') from None


# --------------------------------------------------------------------------- torch files

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def _storage_from_pid(pid: Any) -> tuple[_StorageType, str, int]:
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
        raise CheckpointFormatError(f'unexpected persistent id {pid!r}')
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
        # torch >= 2 may store the dtype instead of a typed storage class
        raise CheckpointFormatError(f'unsupported storage type {storage_type!r}')
    return storage_type, str(pid[2]), int(pid[4])


def _load_torch_zip(zf: zipfile.ZipFile, allowed: Mapping[tuple[str, str], Any]) -> Any:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith('data.pkl') and n.count('/') == 1]
    if not pkl:
        raise CheckpointFormatError('zip file without data.pkl: not a torch checkpoint')
    root = pkl[0][:-len('data.pkl')]
    byteorder_name = root + 'byteorder'
    if byteorder_name in names and zf.read(byteorder_name).strip() not in (b'little', b''):
        raise CheckpointFormatError('big-endian torch files are not supported')
    cache: dict[str, np.ndarray] = {}

    def persistent_load(pid: Any) -> np.ndarray:
        storage_type, key, numel = _storage_from_pid(pid)
        if key not in cache:
            try:
                raw = zf.read(f'{root}data/{key}')
            except KeyError:
                raise CheckpointFormatError(f'storage {key} missing from the archive') from None
            arr = np.frombuffer(raw, dtype=storage_type.dtype)
            if arr.size < numel:
                raise CheckpointFormatError(f'storage {key} is truncated')
            cache[key] = arr[:numel]
        return cache[key]

    try:
        return RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), allowed, persistent_load).load()
    except (UnsafePickleError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, struct.error) as e:
        raise CheckpointFormatError(f'damaged torch file ({type(e).__name__}: {e})') from None


def _load_torch_legacy(f: BinaryIO, allowed: Mapping[tuple[str, str], Any]) -> Any:
    def small(obj_name: str) -> Any:
        return RestrictedUnpickler(f, allowed).load()

    magic = small('magic')
    if magic != _LEGACY_MAGIC:
        raise CheckpointFormatError('not a torch file (bad magic number)')
    small('protocol version')
    sys_info = small('sys info')
    if isinstance(sys_info, dict) and not sys_info.get('little_endian', True):
        raise CheckpointFormatError('big-endian torch files are not supported')
    storages: dict[str, np.ndarray] = {}

    def persistent_load(pid: Any) -> np.ndarray:
        storage_type, key, numel = _storage_from_pid(pid)
        if key not in storages:
            # Filled after the object pickle, from the raw section: tensors are views, so they see it.
            storages[key] = np.zeros(numel, dtype=storage_type.dtype)
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            _, view_offset, view_size = view
            return storages[key][int(view_offset):int(view_offset) + int(view_size)]
        return storages[key]

    result = RestrictedUnpickler(f, allowed, persistent_load).load()
    keys = RestrictedUnpickler(f, allowed).load()
    for key in keys:
        arr = storages[str(key)]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f'storage {key} is truncated')
        (numel,) = struct.unpack('<q', header)
        raw = f.read(numel * arr.itemsize)
        if len(raw) != numel * arr.itemsize or numel != arr.size:
            raise CheckpointFormatError(f'storage {key} is truncated or has the wrong size')
        arr[:] = np.frombuffer(raw, dtype=arr.dtype)
    return result


def load_file(path: str | os.PathLike, allowed: Mapping[tuple[str, str], Any] = ALL_GLOBALS) -> Any:
    """Read a checkpoint file once, whatever its container: torch zip, legacy torch stream or plain pickle."""
    with open(path, 'rb') as f:
        buf = io.BytesIO(f.read())
    if zipfile.is_zipfile(buf):
        return load_torch(buf, allowed)
    buf.seek(0)
    data = load_pickle(buf, allowed)
    if isinstance(data, int) and data == _LEGACY_MAGIC:  # the first of the pickles of a pre-zip torch.save
        return load_torch(buf, allowed)
    return data


def load_torch(file: str | os.PathLike | BinaryIO,
               allowed: Mapping[tuple[str, str], Any] = ALL_GLOBALS) -> Any:
    """Read a `torch.save` file (zip or legacy format) without torch; tensors become numpy arrays."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, 'rb') as f:
            return load_torch(io.BytesIO(f.read()), allowed)
    if zipfile.is_zipfile(file):
        file.seek(0)
        with zipfile.ZipFile(file) as zf:
            return _load_torch_zip(zf, allowed)
    file.seek(0)
    try:
        return _load_torch_legacy(file, allowed)
    except (UnsafePickleError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error) as e:
        raise CheckpointFormatError(f'not a torch checkpoint ({type(e).__name__}: {e})') from None
