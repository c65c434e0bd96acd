"""Import NVlabs' original TensorFlow-1 StyleGAN2 snapshots (`network-snapshot-*.pkl`) as data only.

Such a file is a pickle of the tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects
(spec: ../shared/fixtures/tf_stylegan2/FORMAT.md). It is read with the allow-list unpickler of
`unpickle.py`: the networks become `TFNetworkRecord`s holding their pickled state (name,
static_kwargs, components, variables as numpy arrays); the embedded `build_module_src` is never
executed, and any global outside the allow-list raises `UnsafePickleError`.

The variables are then mapped, through one explicit table per network, onto state dicts keyed
and laid out exactly like stylegan2-ada-pytorch's `Generator.state_dict()` /
`Discriminator.state_dict()` (the hub format of `common.TorchStyleNetworks`):

* conv kernels `[kh, kw, in, out]` -> `[out, in, kh, kw]`; dense `[in, out]` -> `[out, in]`;
* `Conv0_up` kernels are flipped spatially (TF correlates the zero-stuffed input with the stored
  kernel, the PyTorch port runs a transposed convolution, which flips it back);
* `mod_bias` is stored without the style bias init of 1, the PyTorch `affine.bias` includes it;
* `noise{i}` `[1, 1, s, s]` -> `noise_const` `[s, s]`; `4x4/Const/const` `[1, C, 4, 4]` -> `const`;
* `dlatent_avg` -> `mapping.w_avg`; the progressive-growing scalar `lod` is ignored.

Weights are stored unscaled in both codes (equalised learning rate applied at run time), so no
value is rescaled. The architecture comes from the static kwargs (TF defaults where absent, as the
TF build functions apply them) and is checked against every variable's shape. Whatever the
StyleGAN2-ADA networks cannot express exactly is refused with one line naming the kwarg:
architectures other than G 'skip' / D 'resnet', `fmap_decay`/`fmap_min` that change channel
counts, conditional nets (`label_size > 0`: TF's `LabelConcat` normalises z and the label
embedding together, ADA's `embed` normalises them separately), a non-lrelu nonlinearity, another
resampling kernel, a mapping inner width (`mapping_fmaps`) different from `dlatent_size`, and a D
whose `Dense0` width `nf(0)` differs from ADA's `nf(1)`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .common import ConversionError, StateDict, TorchStyleNetworks
from .unpickle import TFNetworkRecord

NAME = SOURCE_FORMAT = 'tf-stylegan2'

# TF defaults of the build functions in NVlabs/stylegan2 `training/networks_stylegan2.py`.
_TF_DEFAULTS: dict[str, Any] = {
    'latent_size': 512, 'dlatent_size': 512, 'label_size': 0,
    'mapping_layers': 8, 'mapping_fmaps': 512, 'mapping_lrmul': 0.01,
    'mapping_nonlinearity': 'lrelu', 'normalize_latents': True,
    'resolution': 1024, 'num_channels': 3,
    'fmap_base': 16 << 10, 'fmap_decay': 1.0, 'fmap_min': 1, 'fmap_max': 512,
    'nonlinearity': 'lrelu', 'resample_kernel': [1, 3, 3, 1],
    'mbstd_group_size': 4, 'mbstd_num_features': 1,
    'truncation_psi': 0.5, 'truncation_cutoff': None, 'dlatent_avg_beta': 0.995,
    'style_mixing_prob': 0.9,
}
_G_ARCHITECTURE, _D_ARCHITECTURE = 'skip', 'resnet'

# Build functions we can map, by role. Anything else (StyleGAN1 `G_style`, the progressive
# `G_synthesis_stylegan_revised` / `D_stylegan` of configs A-D, StyleGAN2-ADA's TF `D_main`, ...) is refused.
_BUILD_FUNCS = {'G': 'G_main', 'synthesis': 'G_synthesis_stylegan2', 'mapping': 'G_mapping', 'D': 'D_stylegan2'}

# Static kwargs each TF build function accepts. G_main forwards all of its kwargs to both components,
# so every record of a generator may carry the union. Runtime/training-only ones are recorded, not mapped.
_G_MAIN_KWARGS = {'truncation_psi', 'truncation_cutoff', 'truncation_psi_val', 'truncation_cutoff_val',
                  'dlatent_avg_beta', 'style_mixing_prob', 'is_training', 'is_validation', 'return_dlatents',
                  'is_template_graph', 'components', 'mapping_func', 'synthesis_func'}
_MAPPING_KWARGS = {'latent_size', 'label_size', 'dlatent_size', 'dlatent_broadcast', 'mapping_layers',
                   'mapping_fmaps', 'mapping_lrmul', 'mapping_nonlinearity', 'normalize_latents', 'dtype'}
_SYNTHESIS_KWARGS = {'dlatent_size', 'num_channels', 'resolution', 'fmap_base', 'fmap_decay', 'fmap_min',
                     'fmap_max', 'randomize_noise', 'architecture', 'nonlinearity', 'dtype', 'resample_kernel',
                     'fused_modconv'}
_G_KWARGS = _G_MAIN_KWARGS | _MAPPING_KWARGS | _SYNTHESIS_KWARGS
_D_KWARGS = {'num_channels', 'resolution', 'label_size', 'fmap_base', 'fmap_decay', 'fmap_min', 'fmap_max',
             'architecture', 'nonlinearity', 'mbstd_group_size', 'mbstd_num_features', 'dtype',
             'resample_kernel', 'is_training', 'is_validation', 'is_template_graph'}

# Component keys seen in the wild for the two generator sub-networks (the key, or the sub-network's name).
_COMPONENT_ALIASES = {'synthesis': 'synthesis', 'G_synthesis': 'synthesis', 'mapping': 'mapping',
                      'G_mapping': 'mapping'}
# Variables that exist in TF nets but have no counterpart in the PyTorch port.
_IGNORED_VARIABLES = {'lod'}


# --------------------------------------------------------------------------- the mapping tables

def _resample_filter() -> np.ndarray:
    """ADA's `resample_filter` buffer: outer([1,3,3,1]) normalised to sum 1 (what `setup_filter` stores)."""
    k = np.array([1, 3, 3, 1], np.float32)
    f = np.outer(k, k)
    return (f / f.sum()).astype(np.float32)


# TF value -> PyTorch value, by kind. Pure layout changes plus the style-bias +1; nothing is rescaled.
_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'copy': lambda v: v,
    'dense': lambda v: v.T,                                   # [in, out] -> [out, in]
    'conv': lambda v: v.transpose(3, 2, 0, 1),                # [kh, kw, in, out] -> [out, in, kh, kw]
    'conv_up': lambda v: v[::-1, ::-1].transpose(3, 2, 0, 1),  # flipped: TF correlates, ADA transposes
    'style_bias': lambda v: v + np.float32(1),                # TF mod_bias omits the bias init of 1
    'noise': lambda v: v[0, 0],                               # [1, 1, s, s] -> [s, s]
    'const': lambda v: v[0],                                  # [1, C, 4, 4] -> [C, 4, 4]
    'scalar': lambda v: v.reshape(()),
}


@dataclasses.dataclass(frozen=True)
class TableEntry:
    """One PyTorch tensor: where it comes from in the TF net (None: a constant buffer) and how."""
    torch_name: str
    tf_name: str | None
    kind: str                   # key of _TRANSFORMS, or 'resample_filter'
    tf_shape: tuple[int, ...]   # the shape the TF variable must have


@dataclasses.dataclass(frozen=True)
class GeneratorArch:
    """What fixes every tensor shape of a G (ADA terms; channels(res) = min(channel_base // res, channel_max))."""
    z_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    mapping_layers: int
    mapping_features: int
    channel_base: int
    channel_max: int

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


@dataclasses.dataclass(frozen=True)
class DiscriminatorArch:
    """What fixes every tensor shape of a D."""
    img_resolution: int
    img_channels: int
    channel_base: int
    channel_max: int
    mbstd_channels: int  # extra input channels of the 4x4 conv (0 when TF skips the mbstd layer)

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


def _modulated(prefix: str, tf_scope: str, cin: int, cout: int, w_dim: int, kernel: int, up: bool,
               noise_idx: int | None, res: int) -> list[TableEntry]:
    """A SynthesisLayer (noise_idx given) or ToRGBLayer, in ADA state_dict order."""
    out = [TableEntry(f'{prefix}.weight', f'{tf_scope}/weight', 'conv_up' if up else 'conv',
                      (kernel, kernel, cin, cout))]
    if noise_idx is not None:
        out.append(TableEntry(f'{prefix}.noise_strength', f'{tf_scope}/noise_strength', 'scalar', ()))
    out.append(TableEntry(f'{prefix}.bias', f'{tf_scope}/bias', 'copy', (cout,)))
    if noise_idx is not None:
        out.append(TableEntry(f'{prefix}.resample_filter', None, 'resample_filter', ()))
        out.append(TableEntry(f'{prefix}.noise_const', f'synthesis/noise{noise_idx}', 'noise', (1, 1, res, res)))
    out.append(TableEntry(f'{prefix}.affine.weight', f'{tf_scope}/mod_weight', 'dense', (w_dim, cin)))
    out.append(TableEntry(f'{prefix}.affine.bias', f'{tf_scope}/mod_bias', 'style_bias', (cin,)))
    return out


def generator_table(arch: GeneratorArch) -> list[TableEntry]:
    """Every tensor of an ADA `Generator.state_dict()` (in its order) and its TF source in `G`/`Gs`.

    TF layer index i uses `w[:, i]` and `noise{i}`: 0 is `4x4/Conv`; at r = 2**k (k >= 3) `Conv0_up`
    is 2k-5 and `Conv1` is 2k-4, which is ADA's conv0/conv1 order in block b{r}.
    """
    table: list[TableEntry] = []
    log2 = int(round(math.log2(arch.img_resolution)))
    for k in range(2, log2 + 1):
        res = 2 ** k
        b, s = f'synthesis.b{res}', f'synthesis/{res}x{res}'
        c_in, c_out = arch.channels(res // 2), arch.channels(res)
        if res == 4:
            table.append(TableEntry(f'{b}.const', f'{s}/Const/const', 'const', (1, c_out, 4, 4)))
        table.append(TableEntry(f'{b}.resample_filter', None, 'resample_filter', ()))
        if res == 4:
            table += _modulated(f'{b}.conv1', f'{s}/Conv', c_out, c_out, arch.w_dim, 3, False, 0, res)
        else:
            table += _modulated(f'{b}.conv0', f'{s}/Conv0_up', c_in, c_out, arch.w_dim, 3, True, 2 * k - 5, res)
            table += _modulated(f'{b}.conv1', f'{s}/Conv1', c_out, c_out, arch.w_dim, 3, False, 2 * k - 4, res)
        table += _modulated(f'{b}.torgb', f'{s}/ToRGB', c_out, arch.img_channels, arch.w_dim, 1, False, None, res)
    table.append(TableEntry('mapping.w_avg', 'dlatent_avg', 'copy', (arch.w_dim,)))
    for i in range(arch.mapping_layers):
        fin = arch.z_dim if i == 0 else arch.mapping_features
        fout = arch.w_dim if i == arch.mapping_layers - 1 else arch.mapping_features
        table.append(TableEntry(f'mapping.fc{i}.weight', f'mapping/Dense{i}/weight', 'dense', (fin, fout)))
        table.append(TableEntry(f'mapping.fc{i}.bias', f'mapping/Dense{i}/bias', 'copy', (fout,)))
    return table


def discriminator_table(arch: DiscriminatorArch) -> list[TableEntry]:
    """Every tensor of an ADA resnet `Discriminator.state_dict()` (in its order) and its TF source in `D`.

    No D kernel is flipped: TF's `conv_downsample_2d` filters then correlates with stride 2, like ADA.
    """
    table: list[TableEntry] = []
    log2 = int(round(math.log2(arch.img_resolution)))
    filt = 'resample_filter'
    for k in range(log2, 2, -1):
        res = 2 ** k
        b, s = f'b{res}', f'{res}x{res}'
        c, c_down = arch.channels(res), arch.channels(res // 2)
        table.append(TableEntry(f'{b}.resample_filter', None, filt, ()))
        if res == arch.img_resolution:
            table += [TableEntry(f'{b}.fromrgb.weight', f'{s}/FromRGB/weight', 'conv', (1, 1, arch.img_channels, c)),
                      TableEntry(f'{b}.fromrgb.bias', f'{s}/FromRGB/bias', 'copy', (c,)),
                      TableEntry(f'{b}.fromrgb.resample_filter', None, filt, ())]
        table += [TableEntry(f'{b}.conv0.weight', f'{s}/Conv0/weight', 'conv', (3, 3, c, c)),
                  TableEntry(f'{b}.conv0.bias', f'{s}/Conv0/bias', 'copy', (c,)),
                  TableEntry(f'{b}.conv0.resample_filter', None, filt, ()),
                  TableEntry(f'{b}.conv1.weight', f'{s}/Conv1_down/weight', 'conv', (3, 3, c, c_down)),
                  TableEntry(f'{b}.conv1.bias', f'{s}/Conv1_down/bias', 'copy', (c_down,)),
                  TableEntry(f'{b}.conv1.resample_filter', None, filt, ()),
                  TableEntry(f'{b}.skip.weight', f'{s}/Skip/weight', 'conv', (1, 1, c, c_down)),
                  TableEntry(f'{b}.skip.resample_filter', None, filt, ())]
    c4 = arch.channels(4)
    table += [TableEntry('b4.conv.weight', '4x4/Conv/weight', 'conv', (3, 3, c4 + arch.mbstd_channels, c4)),
              TableEntry('b4.conv.bias', '4x4/Conv/bias', 'copy', (c4,)),
              TableEntry('b4.conv.resample_filter', None, filt, ()),
              TableEntry('b4.fc.weight', '4x4/Dense0/weight', 'dense', (c4 * 16, c4)),
              TableEntry('b4.fc.bias', '4x4/Dense0/bias', 'copy', (c4,)),
              TableEntry('b4.out.weight', 'Output/weight', 'dense', (c4, 1)),
              TableEntry('b4.out.bias', 'Output/bias', 'copy', (1,))]
    return table


def apply_table(table: Iterable[TableEntry], variables: Mapping[str, np.ndarray], net: str) -> StateDict:
    """Build a PyTorch-style state dict from TF `variables` (full names); every variable must be used once.

    Raises ConversionError naming the first unknown variable, missing variable or wrong shape.
    """
    table = list(table)
    wanted = {e.tf_name for e in table if e.tf_name is not None}
    unknown = [n for n in variables if n not in wanted and n.rsplit('/', 1)[-1] not in _IGNORED_VARIABLES]
    if unknown:
        more = f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''
        raise ConversionError(f'{net}: unknown variable {unknown[0]!r}{more}: not part of a TF StyleGAN2 '
                              f'network of this configuration')
    out: StateDict = {}
    for e in table:
        if e.tf_name is None:
            out[e.torch_name] = _resample_filter()
            continue
        if e.tf_name not in variables:
            raise ConversionError(f'{net}: missing variable {e.tf_name!r} (expected shape {list(e.tf_shape)})')
        value = variables[e.tf_name]
        if tuple(value.shape) != e.tf_shape:
            raise ConversionError(f'{net}: variable {e.tf_name!r} has shape {list(value.shape)}, expected '
                                  f'{list(e.tf_shape)} for this configuration (static_kwargs / TF defaults)')
        out[e.torch_name] = np.array(_TRANSFORMS[e.kind](value), dtype=np.float32, order='C')  # a copy; keeps 0-d
    return out


# --------------------------------------------------------------------------- records -> flat variables

def _state(rec: Any, what: str) -> dict:
    if not isinstance(rec, TFNetworkRecord):
        raise ConversionError(f'{what}: expected a dnnlib.tflib.network.Network, found {type(rec).__name__}')
    state = rec.state
    for key in ('name', 'static_kwargs', 'components', 'variables'):
        if key not in state:
            raise ConversionError(f'{what}: network state lacks {key!r}: not a TF StyleGAN2 network')
    version = state.get('version')
    if version != 4:
        raise ConversionError(f'{what}: network state version {version!r}; StyleGAN2 TF snapshots have version 4 '
                              f'(older versions come from StyleGAN1/PGGAN code)')
    if not isinstance(state['static_kwargs'], Mapping) or not isinstance(state['components'], Mapping):
        raise ConversionError(f'{what}: malformed network state (static_kwargs/components not dicts)')
    return state


def _as_array(value: Any, name: str, net: str) -> np.ndarray:
    # 0-d variables (lod, noise_strength) come as numpy.float32 scalars, everything else as ndarrays.
    if isinstance(value, (np.ndarray, np.floating, float, int)) and not isinstance(value, bool):
        arr = np.asarray(value)
        if arr.dtype.kind in 'fiu':
            return arr.astype(np.float32, copy=False)
    raise ConversionError(f'{net}: variable {name!r} is not a numeric array ({type(value).__name__})')


def _local_name(name: Any, own_names: Iterable[str], net: str) -> str:
    """Strip what TF adds around a variable's local name: a ':0' output suffix and the own scope."""
    if not isinstance(name, str) or not name:
        raise ConversionError(f'{net}: variable name {name!r} is not a string')
    if name.endswith(':0'):
        name = name[:-2]
    for scope in own_names:
        if scope and name.startswith(scope + '/'):
            return name[len(scope) + 1:]
    return name


def _canonical(full: str) -> str:
    """'G_synthesis/4x4/...' -> 'synthesis/4x4/...' (flat dumps name the sub-network instead of its key)."""
    head, sep, rest = full.partition('/')
    if sep and head in _COMPONENT_ALIASES:
        return _COMPONENT_ALIASES[head] + '/' + rest
    return full


def flatten_variables(rec: TFNetworkRecord, what: str) -> dict[str, np.ndarray]:
    """All variables of a network and its components, keyed by full path ('synthesis/4x4/Conv/weight')."""
    out: dict[str, np.ndarray] = {}

    def visit(r: Any, prefix: str, label: str, own: tuple[str, ...]) -> None:
        state = _state(r, label)
        variables = state['variables']
        if not isinstance(variables, (list, tuple)):
            raise ConversionError(f'{label}: variables is a {type(variables).__name__}, expected a list')
        for item in variables:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise ConversionError(f'{label}: malformed variable entry {item!r:.60}')
            name, value = item
            full = _canonical(prefix + _local_name(name, own + (str(state['name']),), label))
            if full in out:
                raise ConversionError(f'{what}: variable {full!r} appears twice')
            out[full] = _as_array(value, full, what)
        for key, comp in state['components'].items():
            canon = _COMPONENT_ALIASES.get(key)
            if canon is None:
                raise ConversionError(f'{what}: unknown component {key!r} (a StyleGAN2 G has synthesis and mapping)')
            visit(comp, prefix + canon + '/', f'{what}/{canon}', (key, canon))

    visit(rec, '', what, ())
    return out


# --------------------------------------------------------------------------- static kwargs -> architecture

def _plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples in static kwargs -> JSON-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class _Kwargs:
    """Static kwargs of one TF network with the TF defaults behind them; records which keys were read."""

    def __init__(self, kwargs: Mapping[str, Any], allowed: set[str], net: str) -> None:
        self.kw = {str(k): _plain(v) for k, v in kwargs.items()}
        self.net = net
        unknown = sorted(set(self.kw) - allowed)
        if unknown:
            raise ConversionError(f'{net}: unknown static kwarg {unknown[0]}={self.kw[unknown[0]]!r}: not an argument '
                                  f'of the NVlabs StyleGAN2 build functions, cannot tell what it changes')

    def __getitem__(self, key: str) -> Any:
        return self.kw.get(key, _TF_DEFAULTS.get(key))

    def int(self, key: str, minimum: int = 0) -> int:
        value = self[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConversionError(f'{self.net}: static kwarg {key}={value!r} is not an integer >= {minimum}')
        return value

    def require(self, key: str, expected: Any, why: str, default: Any = None) -> None:
        value = self.kw.get(key, default) if default is not None else self[key]
        if value != expected:
            raise ConversionError(f'{self.net}: {key}={value!r} is not supported ({why}; only {expected!r} maps '
                                  f'exactly onto the StyleGAN2-ADA networks)')


def _channel_base(kw: _Kwargs, stages: Iterable[int]) -> tuple[int, int]:
    """ADA (channel_base, channel_max) giving TF's nf(stage) for every stage used; refuse otherwise.

    TF: nf(s) = clip(int(fmap_base / 2**(s * fmap_decay)), fmap_min, fmap_max) for layers at res 2**(s+1).
    ADA: channels(res) = min(channel_base // res, channel_max), so channel_base = 2 * fmap_base.
    """
    fmap_base, fmap_max, fmap_min = kw.int('fmap_base', 1), kw.int('fmap_max', 1), kw.int('fmap_min', 0)
    decay = kw['fmap_decay']
    if not isinstance(decay, (int, float)):
        raise ConversionError(f'{kw.net}: static kwarg fmap_decay={decay!r} is not a number')
    channel_base, channel_max = 2 * fmap_base, fmap_max
    for s in stages:
        tf_nf = int(np.clip(int(fmap_base / (2.0 ** (s * decay))), fmap_min, fmap_max))
        ada_nf = min(channel_base // 2 ** (s + 1), channel_max)
        if tf_nf != ada_nf:
            culprit = 'fmap_decay' if decay != 1 else 'fmap_min'
            raise ConversionError(f'{kw.net}: {culprit}={kw[culprit]!r} gives {tf_nf} channels at '
                                  f'{2 ** (s + 1)}x{2 ** (s + 1)} where the StyleGAN2-ADA networks '
                                  f'(channel_base={channel_base}, channel_max={channel_max}) have {ada_nf}')
    return channel_base, channel_max


def _log2_resolution(kw: _Kwargs) -> int:
    res = kw.int('resolution', 4)
    log2 = int(round(math.log2(res)))
    if 2 ** log2 != res:
        raise ConversionError(f'{kw.net}: static kwarg resolution={res} is not a power of two')
    return log2


def _check_unconditional(kw: _Kwargs) -> None:
    if kw.int('label_size') != 0:
        raise ConversionError(f'{kw.net}: label_size={kw["label_size"]}: conditional TF StyleGAN2 nets are not '
                              f'supported (TF LabelConcat normalises z and the label embedding together; the '
                              f'StyleGAN2-ADA mapping embeds and normalises the label separately, so no exact mapping)')


def _common_checks(kw: _Kwargs) -> None:
    _check_unconditional(kw)
    kw.require('nonlinearity', 'lrelu', 'other activation functions')
    if list(kw['resample_kernel'] or []) != [1, 3, 3, 1]:
        kw.require('resample_kernel', [1, 3, 3, 1], 'the resampling filter is fixed to [1,3,3,1]')


def generator_arch(top: TFNetworkRecord, what: str) -> tuple[GeneratorArch, dict[str, Any]]:
    """GeneratorArch (and TF runtime settings worth keeping) from the static kwargs of G/Gs and its components."""
    state = _state(top, what)
    if state.get('build_func_name') != _BUILD_FUNCS['G']:
        raise ConversionError(f'{what}: build function {state.get("build_func_name")!r} is not supported '
                              f'(expected {_BUILD_FUNCS["G"]!r} of NVlabs StyleGAN2; StyleGAN1/PGGAN nets differ)')
    comps = {_COMPONENT_ALIASES.get(k, k): c for k, c in state['components'].items()}
    if set(comps) != {'synthesis', 'mapping'}:
        raise ConversionError(f'{what}: components {sorted(state["components"])}; expected synthesis and mapping')
    for role in ('synthesis', 'mapping'):
        func = _state(comps[role], f'{what}/{role}').get('build_func_name')
        if func != _BUILD_FUNCS[role]:
            raise ConversionError(f'{what}/{role}: build function {func!r} is not supported (expected '
                                  f'{_BUILD_FUNCS[role]!r}; configs A-D and StyleGAN1 use other synthesis nets)')
    top_kw = _Kwargs(state['static_kwargs'], _G_KWARGS, what)
    syn = _Kwargs(comps['synthesis'].state['static_kwargs'], _G_KWARGS, f'{what}/synthesis')
    mapk = _Kwargs(comps['mapping'].state['static_kwargs'], _G_KWARGS, f'{what}/mapping')

    for key, default in (('mapping_func', 'G_mapping'), ('synthesis_func', 'G_synthesis_stylegan2')):
        value = top_kw[key]
        if value is not None and str(value).rsplit('.', 1)[-1] != default:
            raise ConversionError(f'{what}: {key}={value!r} is not supported (only {default!r})')
    _common_checks(syn)
    syn.require('architecture', _G_ARCHITECTURE, 'the generator is built as a skip architecture',
                default=_G_ARCHITECTURE)
    mapk.require('mapping_nonlinearity', 'lrelu', 'other mapping activation functions')
    mapk.require('normalize_latents', True, 'the mapping always normalises z')
    _check_unconditional(mapk)

    log2 = _log2_resolution(syn)
    num_ws = 2 * log2 - 2
    broadcast = mapk['dlatent_broadcast']
    if broadcast is not None and broadcast != num_ws:
        raise ConversionError(f'{what}/mapping: dlatent_broadcast={broadcast!r} but a {2 ** log2}px synthesis '
                              f'network takes {num_ws} dlatents')
    w_dim = syn.int('dlatent_size', 1)
    if mapk.int('dlatent_size', 1) != w_dim:
        raise ConversionError(f'{what}: dlatent_size {mapk["dlatent_size"]} (mapping) != {w_dim} (synthesis)')
    mapping_layers = mapk.int('mapping_layers', 1)
    features = mapk.int('mapping_fmaps', 1) if mapping_layers > 1 else w_dim
    if features != w_dim:  # our MappingNetwork's inner width is w_dim (ADA's default layer_features)
        raise ConversionError(f'{what}: mapping_fmaps={features} differs from dlatent_size={w_dim}: the mapping '
                              f'network here has inner width w_dim (ADA layer_features), so this net is not supported yet')
    lrmul = mapk['mapping_lrmul']
    if not isinstance(lrmul, (int, float)) or lrmul <= 0:
        raise ConversionError(f'{what}/mapping: static kwarg mapping_lrmul={lrmul!r} is not a positive number')
    channel_base, channel_max = _channel_base(syn, range(1, log2))
    arch = GeneratorArch(z_dim=mapk.int('latent_size', 1), w_dim=w_dim, img_resolution=2 ** log2,
                         img_channels=syn.int('num_channels', 1), mapping_layers=mapping_layers,
                         mapping_features=features, channel_base=channel_base, channel_max=channel_max)
    runtime = {'mapping_lrmul': float(lrmul), 'truncation_psi': top_kw['truncation_psi'],
               'truncation_cutoff': top_kw['truncation_cutoff'], 'dlatent_avg_beta': top_kw['dlatent_avg_beta'],
               'style_mixing_prob': top_kw['style_mixing_prob']}
    return arch, runtime


def discriminator_arch(rec: TFNetworkRecord, what: str) -> tuple[DiscriminatorArch, dict[str, Any]]:
    """DiscriminatorArch (and the mbstd settings) from D's static kwargs."""
    state = _state(rec, what)
    if state.get('build_func_name') != _BUILD_FUNCS['D']:
        raise ConversionError(f'{what}: build function {state.get("build_func_name")!r} is not supported '
                              f'(expected {_BUILD_FUNCS["D"]!r} of NVlabs StyleGAN2)')
    if state['components']:
        raise ConversionError(f'{what}: unexpected components {sorted(state["components"])}')
    kw = _Kwargs(state['static_kwargs'], _D_KWARGS, what)
    _common_checks(kw)
    kw.require('architecture', _D_ARCHITECTURE, 'the discriminator is built as a resnet architecture',
               default=_D_ARCHITECTURE)
    log2 = _log2_resolution(kw)
    channel_base, channel_max = _channel_base(kw, range(1, log2))
    # TF's Dense0 has nf(0) outputs, ADA's b4.fc has channels(4) = nf(1).
    fmap_base, fmap_max = kw.int('fmap_base', 1), kw.int('fmap_max', 1)
    nf0 = int(np.clip(int(fmap_base / 1.0), kw.int('fmap_min'), fmap_max))
    nf1 = min(channel_base // 4, channel_max)
    if nf0 != nf1:
        raise ConversionError(f'{what}: fmap_base={fmap_base} with fmap_max={fmap_max} gives 4x4/Dense0 {nf0} '
                              f'outputs where the StyleGAN2-ADA discriminator has {nf1} (needs fmap_base >= 2*fmap_max)')
    group = kw.int('mbstd_group_size')
    features = kw.int('mbstd_num_features', 1)
    # TF only adds the minibatch-stddev layer when group_size > 1; ADA's switch is num_channels > 0.
    mbstd_channels = features if group > 1 else 0
    arch = DiscriminatorArch(img_resolution=2 ** log2, img_channels=kw.int('num_channels', 1),
                             channel_base=channel_base, channel_max=channel_max, mbstd_channels=mbstd_channels)
    return arch, {'mbstd_group_size': group, 'mbstd_num_channels': mbstd_channels}


# --------------------------------------------------------------------------- public API

def detect(obj: Any) -> bool:
    """True for what the allow-list unpickler makes of a TF StyleGAN2 snapshot: `(G, D, Gs)` records, or a bare Gs."""
    if isinstance(obj, TFNetworkRecord):
        return True
    return isinstance(obj, (tuple, list)) and len(obj) == 3 and all(isinstance(o, TFNetworkRecord) for o in obj)


def _ignored_note(recs: Mapping[str, TFNetworkRecord]) -> list[str]:
    notes = []
    for label, rec in recs.items():
        for name, value in flatten_variables(rec, label).items():
            if name.rsplit('/', 1)[-1] in _IGNORED_VARIABLES:
                notes.append(f'{label}: ignored progressive-growing variable {name!r} = {float(np.max(value)):g} '
                             f'(unused by StyleGAN2 skip/resnet nets)')
    return notes


def _g_kwargs(arch: GeneratorArch, runtime: Mapping[str, Any]) -> dict[str, Any]:
    mapping_kwargs: dict[str, Any] = {'num_layers': arch.mapping_layers}
    if arch.mapping_features != arch.w_dim:
        mapping_kwargs['layer_features'] = arch.mapping_features
    if runtime['mapping_lrmul'] != 0.01:
        mapping_kwargs['lr_multiplier'] = runtime['mapping_lrmul']
    beta = runtime['dlatent_avg_beta']
    if isinstance(beta, (int, float)) and beta != 0.995:  # only matters when training on from this net
        mapping_kwargs['w_avg_beta'] = float(beta)
    return {'z_dim': arch.z_dim, 'c_dim': 0, 'w_dim': arch.w_dim, 'img_resolution': arch.img_resolution,
            'img_channels': arch.img_channels, 'mapping_kwargs': mapping_kwargs,
            'synthesis_kwargs': {'channel_base': arch.channel_base, 'channel_max': arch.channel_max,
                                 'num_fp16_res': 0, 'conv_clamp': None}}


def convert_generator(rec: TFNetworkRecord, what: str) -> tuple[StateDict, dict[str, Any], dict[str, Any]]:
    """One TF G/Gs record -> (ADA Generator state dict, ADA Generator kwargs, TF runtime settings)."""
    arch, runtime = generator_arch(rec, what)
    state = apply_table(generator_table(arch), flatten_variables(rec, what), what)
    return state, _g_kwargs(arch, runtime), runtime


def convert_discriminator(rec: TFNetworkRecord, what: str = 'D') -> tuple[StateDict, dict[str, Any]]:
    """One TF D record -> (ADA Discriminator state dict, ADA Discriminator kwargs)."""
    arch, epilogue = discriminator_arch(rec, what)
    state = apply_table(discriminator_table(arch), flatten_variables(rec, what), what)
    kwargs = {'c_dim': 0, 'img_resolution': arch.img_resolution, 'img_channels': arch.img_channels,
              'channel_base': arch.channel_base, 'channel_max': arch.channel_max, 'num_fp16_res': 0,
              'conv_clamp': None, 'mapping_kwargs': {}, 'epilogue_kwargs': epilogue}
    return state, kwargs


def convert(obj: Any) -> TorchStyleNetworks:
    """An unpickled TF snapshot (`(G, D, Gs)` records, or a bare Gs record) -> TorchStyleNetworks.

    G_ema comes from Gs; G and D are kept for training/transfer. Raises ConversionError (one line,
    naming the network and the variable or kwarg) for anything that cannot be mapped exactly.
    """
    if not detect(obj):
        raise ConversionError(f'not a TF StyleGAN2 snapshot: expected the tuple (G, D, Gs) of '
                              f'dnnlib.tflib.network.Network, found {type(obj).__name__}')
    notes: list[str] = []
    if isinstance(obj, TFNetworkRecord):
        recs = {'Gs': obj}
        notes.append('the file holds a single generator: used as Gs (G_ema); no G or D to keep for training')
    else:
        recs = {'G': obj[0], 'D': obj[1], 'Gs': obj[2]}
        for label, rec in recs.items():
            name = rec.state.get('name')
            if name is not None and name != label:
                raise ConversionError(f'tuple element {list(recs).index(label)} is network {name!r}, expected '
                                      f'{label!r} (a TF snapshot is the tuple (G, D, Gs))')
    g_ema, g_kwargs, runtime = convert_generator(recs['Gs'], 'Gs')
    result = TorchStyleNetworks(G_ema=g_ema, G_kwargs=g_kwargs, source_format=SOURCE_FORMAT, notes=notes)
    if 'G' in recs:
        result.G, g_train_kwargs, _ = convert_generator(recs['G'], 'G')
        if g_train_kwargs != g_kwargs:
            raise ConversionError(f'G and Gs differ in architecture: {g_train_kwargs} vs {g_kwargs}')
        result.D, result.D_kwargs = convert_discriminator(recs['D'], 'D')
        for key in ('img_resolution', 'img_channels'):
            if result.D_kwargs[key] != g_kwargs[key]:
                raise ConversionError(f'D and Gs differ in {key}: {result.D_kwargs[key]} vs {g_kwargs[key]}')
    notes += _ignored_note(recs)
    psi = runtime['truncation_psi']
    notes.append(f'TF Gs.run() truncates with psi={psi} by default'
                 + (f' (cutoff {runtime["truncation_cutoff"]})' if runtime['truncation_cutoff'] is not None else '')
                 + '; pass that psi to reproduce TF samples')
    result.extra = {'tf_truncation_psi': psi, 'tf_truncation_cutoff': runtime['truncation_cutoff'],
                    'w_avg_beta': runtime['dlatent_avg_beta'], 'style_mixing_prob': runtime['style_mixing_prob'],
                    'tf_static_kwargs': {label: _plain(dict(rec.state['static_kwargs'])) for label, rec in recs.items()}}
    return result
