"""TorchStyleNetworks (StyleGAN2-ADA names) -> our NetworkConfig and Flax variable trees.

Every tensor is checked against the tree our modules expect for the inferred config: a missing,
unexpected or mis-shaped tensor is an error naming the key; nothing is silently dropped except the
constant `resample_filter` buffers, which are verified to be the standard [1,3,3,1] filter.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax import networks
from stylegan_jax.convert.common import ConversionError, StateDict, TorchStyleNetworks
from stylegan_jax.networks import NetworkConfig

_STANDARD_FILTER = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


@dataclasses.dataclass
class ConvertedNetworks:
    """A network config plus variables {'params', 'buffers'} for G_ema, and G / D when present."""
    cfg: NetworkConfig
    variables: dict[str, dict]
    source_format: str = ''
    notes: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def _get(kwargs: dict, key: str, default: Any) -> Any:
    value = kwargs.get(key, default)
    return default if value is None and default is not None else value


def config_from_torch_kwargs(g_kwargs: dict[str, Any], d_kwargs: dict[str, Any] | None = None) -> NetworkConfig:
    """NetworkConfig from StyleGAN2-ADA Generator / Discriminator constructor kwargs."""
    missing = [k for k in ('z_dim', 'w_dim', 'img_resolution') if k not in g_kwargs]
    if missing:
        raise ConversionError(f'generator constructor arguments lack {", ".join(missing)}')
    mk = dict(g_kwargs.get('mapping_kwargs') or {})
    sk = dict(g_kwargs.get('synthesis_kwargs') or {})
    w_dim = int(g_kwargs['w_dim'])
    for key in ('embed_features', 'layer_features'):
        if mk.get(key) not in (None, w_dim):
            raise ConversionError(f'mapping_kwargs.{key}={mk[key]} differs from w_dim={w_dim}: not supported')
    if sk.get('architecture', 'skip') != 'skip':
        raise ConversionError(f"synthesis architecture {sk['architecture']!r} is not supported (only 'skip')")
    if mk.get('activation', 'lrelu') != 'lrelu':
        raise ConversionError(f"mapping activation {mk['activation']!r} is not supported")
    cfg: dict[str, Any] = dict(
        z_dim=int(g_kwargs['z_dim']), w_dim=w_dim, c_dim=int(g_kwargs.get('c_dim', 0) or 0),
        img_resolution=int(g_kwargs['img_resolution']), img_channels=int(g_kwargs.get('img_channels', 3)),
        mapping_layers=int(_get(mk, 'num_layers', 8)),
        mapping_lr_multiplier=float(_get(mk, 'lr_multiplier', 0.01)),
        w_avg_beta=float(_get(mk, 'w_avg_beta', 0.995)),
        channel_base=int(_get(sk, 'channel_base', 32768)), channel_max=int(_get(sk, 'channel_max', 512)),
        num_fp16_res=int(_get(sk, 'num_fp16_res', 0)),
        conv_clamp=None if sk.get('conv_clamp') is None else float(sk['conv_clamp']),
    )
    if d_kwargs:
        if d_kwargs.get('architecture', 'resnet') != 'resnet':
            raise ConversionError(f"discriminator architecture {d_kwargs['architecture']!r} is not supported "
                                  "(only 'resnet')")
        for key in ('channel_base', 'channel_max'):
            d_value = int(_get(d_kwargs, key, {'channel_base': 32768, 'channel_max': 512}[key]))
            if d_value != cfg[key]:
                raise ConversionError(f'D {key}={d_value} differs from G {key}={cfg[key]}: not supported')
        d_clamp = d_kwargs.get('conv_clamp')
        if (None if d_clamp is None else float(d_clamp)) != cfg['conv_clamp']:
            raise ConversionError(f'D conv_clamp={d_clamp} differs from G conv_clamp={cfg["conv_clamp"]}')
        ek = dict(d_kwargs.get('epilogue_kwargs') or {})
        dm = dict(d_kwargs.get('mapping_kwargs') or {})
        cfg.update(
            mbstd_group_size=ek.get('mbstd_group_size', 4),
            mbstd_num_channels=int(_get(ek, 'mbstd_num_channels', 1)),
            d_mapping_layers=int(_get(dm, 'num_layers', 8)),
            d_cmap_dim=d_kwargs.get('cmap_dim'),
            d_num_fp16_res=int(_get(d_kwargs, 'num_fp16_res', 0)),
        )
    try:
        return NetworkConfig(**cfg)
    except (TypeError, ValueError) as e:  # e.g. a resolution that is not a power of two
        raise ConversionError(f'unsupported network configuration: {e}') from None


def _abstract_variables(module: Any, *args: Any) -> dict:
    keys = {'params': jax.random.PRNGKey(0), 'noise': jax.random.PRNGKey(1)}
    return jax.eval_shape(lambda: module.init(keys, *args))


def expected_variables(cfg: NetworkConfig, which: str) -> dict[str, Any]:
    """Flat name -> ShapeDtypeStruct of the variables our G ('G', 'G_ema') or D ('D') has for cfg."""
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    if which == 'D':
        img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
        tree = _abstract_variables(networks.Discriminator(cfg), img, c)
    else:
        tree = _abstract_variables(networks.Generator(cfg), jnp.zeros((1, cfg.z_dim)), c)
    flat = {}
    for collection, sub in tree.items():
        for name, leaf in networks.flatten_names(dict(sub)).items():
            flat[name] = (collection, leaf)
    return flat


def variables_from_state_dict(sd: StateDict, cfg: NetworkConfig, which: str) -> dict:
    """Check `sd` (ADA names) against our modules for `cfg` and build {'params', 'buffers'} numpy trees."""
    expected = expected_variables(cfg, which)
    for name, value in sd.items():
        if name.endswith('resample_filter'):
            if np.shape(value) != (4, 4) or not np.allclose(value, _STANDARD_FILTER, atol=1e-6):
                raise ConversionError(f'{which}: {name} is not the standard [1,3,3,1] filter: not supported')
            continue
        if name not in expected:
            raise ConversionError(f'{which}: unexpected tensor {name!r} {tuple(np.shape(value))}')
        want = tuple(expected[name][1].shape)
        if tuple(np.shape(value)) != want:
            raise ConversionError(f'{which}: tensor {name!r} has shape {tuple(np.shape(value))}, expected {want}')
    missing = [n for n in expected if n not in sd]
    if missing:
        names = ', '.join(repr(n) for n in missing[:5])
        raise ConversionError(f'{which}: missing tensor{"s" if len(missing) > 1 else ""} {names}'
                              + (f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''))
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, (collection, _) in expected.items():
        grouped.setdefault(collection, {})[name] = np.asarray(sd[name], np.float32)
    return {collection: networks.unflatten_names(flat) for collection, flat in grouped.items()}


def compute_w_avg(cfg: NetworkConfig, g_vars: dict, num_samples: int = 10000, seed: int = 0,
                  batch: int = 2500) -> np.ndarray:
    """Mean of mapping(z) over `num_samples` standard-normal z (for checkpoints that store no w_avg)."""
    gen = networks.Generator(cfg)

    @jax.jit
    def mapped_sum(variables, z, c):
        ws = gen.apply(variables, z, c, method=networks.Generator.map)
        return jnp.sum(ws[:, 0], axis=0)

    rng = np.random.RandomState(seed)
    total = np.zeros(cfg.w_dim, np.float64)
    for start in range(0, num_samples, batch):
        n = min(batch, num_samples - start)
        z = rng.randn(n, cfg.z_dim).astype(np.float32)
        c = np.eye(cfg.c_dim, dtype=np.float32)[rng.randint(cfg.c_dim, size=n)] if cfg.c_dim else None
        total += np.asarray(mapped_sum(g_vars, z, c), np.float64)
    return (total / num_samples).astype(np.float32)


def networks_from_torch_style(nets: TorchStyleNetworks, w_avg_samples: int = 10000,
                              seed: int = 0) -> ConvertedNetworks:
    """Build config and Flax variables; fill a missing w_avg from `w_avg_samples` mapped samples."""
    cfg = config_from_torch_kwargs(nets.G_kwargs, nets.D_kwargs)
    notes = list(nets.notes)
    variables: dict[str, dict] = {}
    for which, sd in (('G_ema', nets.G_ema), ('G', nets.G), ('D', nets.D)):
        if sd is None:
            continue
        sd = dict(sd)
        if which != 'D' and 'mapping.w_avg' not in sd:
            sd['mapping.w_avg'] = np.zeros(cfg.w_dim, np.float32)
            if which == 'G_ema':
                variables_tmp = variables_from_state_dict(sd, cfg, which)
                sd['mapping.w_avg'] = compute_w_avg(cfg, variables_tmp, w_avg_samples, seed)
                notes.append(f'w_avg computed from {w_avg_samples} mapped samples (seed {seed})')
            else:
                sd['mapping.w_avg'] = np.asarray(variables['G_ema']['buffers']['mapping']['w_avg'])
        variables[which] = variables_from_state_dict(sd, cfg, which)
    return ConvertedNetworks(cfg=cfg, variables=variables, source_format=nets.source_format,
                             notes=notes, extra=dict(nets.extra))
