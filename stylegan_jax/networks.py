"""StyleGAN2 generator and discriminator as Flax linen modules (config-compatible with StyleGAN2-ADA).

Parameter trees are named after the reference modules (`mapping/fc0/weight`,
`synthesis/b8/conv0/affine/bias`, `b32/skip/weight`) and keep PyTorch layouts, so a converted
StyleGAN2-ADA state dict maps onto them one to one. Non-trained state lives in the `buffers`
collection: `mapping/w_avg` (tracked during training) and each layer's `noise_const`.

Images are NHWC float32 in [-1, 1]. The generator is the 'skip' architecture StyleGAN2 uses; the
discriminator is 'resnet' (StyleGAN2), 'orig' (the reference's cifar config) or 'skip'
(`NetworkConfig.d_architecture`).

Precision: parameters are always float32 (the master weights). The `num_fp16_res` highest
resolutions compute in `mixed_dtype` (the reference: float16, with conv_clamp and the modulated
conv's pre-normalisation; bfloat16 for TPU / A100+), everything else in float32 with matmul/conv
precision `fp32_precision` ('highest' = true float32, the reference's no-TF32 choice).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax import layers

NOISE_MODES = ('const', 'random', 'none')
MIXED_DTYPES = ('float16', 'bfloat16')
D_ARCHITECTURES = ('orig', 'skip', 'resnet')
# model.fp32_precision -> the precision of float32 matmuls/convs ('high' = bf16_3x on TPU, TF32 on GPU).
FP32_PRECISIONS = {'highest': jax.lax.Precision.HIGHEST, 'high': jax.lax.Precision.HIGH,
                   'default': jax.lax.Precision.DEFAULT}


# --------------------------------------------------------------------------- configuration

@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Hyperparameters of a G/D pair; defaults are the reference's (stylegan2-ada-pytorch)."""
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 256
    img_channels: int = 3
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    channel_base: int = 16384
    channel_max: int = 512
    num_fp16_res: int = 0          # highest-resolution blocks computed in `mixed_dtype` (ref: fp16)
    mixed_dtype: str = 'bfloat16'  # 'float16' (reference; T4/V100) or 'bfloat16' (TPU, A100+)
    fp32_precision: str = 'highest'  # float32 layers' matmul/conv precision: 'highest' | 'high' | 'default'
    conv_clamp: float | None = 256.0
    mbstd_group_size: int | None = 4
    mbstd_num_channels: int = 1
    d_mapping_layers: int = 8      # only used when c_dim > 0 (D's label embedding)
    d_cmap_dim: int | None = None  # default: channels at 4x4
    d_num_fp16_res: int | None = None  # default: same as num_fp16_res
    d_architecture: str = 'resnet'     # reference DiscriminatorBlock: 'orig' | 'skip' | 'resnet'

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 4 or r > 4096 or r & (r - 1):
            raise ValueError(f'img_resolution must be a power of two >= 4, got {r}')
        if self.c_dim and self.z_dim == 0 and self.mapping_layers == 0:
            raise ValueError('a conditional generator needs mapping layers')
        for name, value, allowed in (('mixed_dtype', self.mixed_dtype, MIXED_DTYPES),
                                     ('fp32_precision', self.fp32_precision, tuple(FP32_PRECISIONS)),
                                     ('d_architecture', self.d_architecture, D_ARCHITECTURES)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {", ".join(map(repr, allowed))}, got {value!r}')

    @property
    def num_ws(self) -> int:
        return 2 * int(np.log2(self.img_resolution)) - 2

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> 'NetworkConfig':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f'unknown network config keys: {", ".join(unknown)}')
        return cls(**d)

    def dtype(self, res: int, num_fp16_res: int) -> Any:
        """Compute dtype of the block at `res` when the `num_fp16_res` highest resolutions are mixed
        (reference: fp16_resolution = max(2 ** (log2(R) + 1 - num_fp16_res), 8))."""
        fp16_res = max(2 ** (int(np.log2(self.img_resolution)) + 1 - num_fp16_res), 8)
        return jnp.dtype(self.mixed_dtype) if num_fp16_res > 0 and res >= fp16_res else jnp.dtype(jnp.float32)

    def precision(self, dtype: Any = jnp.float32) -> Any:
        """The lax precision of a layer computing in `dtype`: `fp32_precision` for float32, else native."""
        return FP32_PRECISIONS[self.fp32_precision] if jnp.dtype(dtype) == jnp.float32 else None


# --------------------------------------------------------------------------- basic layers

class FullyConnected(nn.Module):
    """Equalised-learning-rate dense layer (reference FullyConnectedLayer), weight [out, in]."""
    out_features: int
    activation: str = 'linear'
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        weight = self.param('weight', lambda k, s: jax.random.normal(k, s) / self.lr_multiplier,
                            (self.out_features, in_features))
        bias = self.param('bias', lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.out_features,))
        w = weight * (self.lr_multiplier / np.sqrt(in_features))
        x = jnp.matmul(x.astype(jnp.float32), w.T, precision=self.precision)
        return layers.bias_act(x, bias * self.lr_multiplier, self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate conv with optional FIR down-sampling (reference Conv2dLayer), NHWC."""
    out_channels: int
    kernel_size: int
    use_bias: bool = True
    activation: str = 'linear'
    down: int = 1
    conv_clamp: float | None = None
    dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
        in_channels = x.shape[-1]
        k = self.kernel_size
        weight = self.param('weight', nn.initializers.normal(1.0), (self.out_channels, in_channels, k, k))
        w = (weight * (1 / np.sqrt(in_channels * k * k))).astype(self.dtype)
        x = layers.conv2d_resample(x.astype(self.dtype), w, down=self.down, padding=k // 2, precision=self.precision)
        bias = self.param('bias', nn.initializers.zeros, (self.out_channels,)) if self.use_bias else None
        g = layers.act_gain(self.activation) * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return layers.bias_act(x, bias, self.activation, gain=g, clamp=clamp)


# --------------------------------------------------------------------------- generator

class MappingNetwork(nn.Module):
    """z (and optional label c) -> w broadcast to num_ws rows; tracks w_avg; truncation."""
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int | None
    num_layers: int = 8
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995
    precision: Any = None

    @nn.compact
    def __call__(self, z: jax.Array | None, c: jax.Array | None = None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None) -> jax.Array:
        """w (broadcast to num_ws rows). w_avg is a buffer here; training tracks it (step.update_w_avg)."""
        fc = functools.partial(FullyConnected, precision=self.precision)
        x = None
        if self.z_dim > 0:
            x = layers.normalize_2nd_moment(z.astype(jnp.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f'this network is conditional (c_dim={self.c_dim}): pass labels c')
            y = layers.normalize_2nd_moment(fc(self.w_dim, name='embed')(c.astype(jnp.float32)))
            x = y if x is None else jnp.concatenate([x, y], axis=1)
        for i in range(self.num_layers):
            x = fc(self.w_dim, activation='lrelu', lr_multiplier=self.lr_multiplier, name=f'fc{i}')(x)
        if self.w_avg_beta is None:
            return x
        w_avg = self.variable('buffers', 'w_avg', lambda: jnp.zeros((self.w_dim,), jnp.float32))
        if self.num_ws is not None:
            x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        psi = jnp.asarray(truncation_psi, jnp.float32)
        avg = w_avg.value
        truncated = avg + psi * (x - avg)
        if truncation_cutoff is None:
            return jnp.where(psi == 1.0, x, truncated)
        rows = (jnp.arange(x.shape[1]) < truncation_cutoff)[None, :, None]
        return jnp.where(rows & (psi != 1.0), truncated, x)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, lrelu, clamp."""
    out_channels: int
    resolution: int
    up: int = 1
    conv_clamp: float | None = None
    dtype: Any = jnp.float32
    precision: Any = None         # of this layer's convolution (None in a mixed-precision block)
    fc_precision: Any = None      # of the float32 affine (style) layer

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise_mode: str = 'random', gain: float = 1.0) -> jax.Array:
        in_channels = x.shape[-1]
        styles = FullyConnected(in_channels, bias_init=1.0, precision=self.fc_precision, name='affine')(w)
        weight = self.param('weight', nn.initializers.normal(1.0), (self.out_channels, in_channels, 3, 3))
        noise_strength = self.param('noise_strength', nn.initializers.zeros, ())
        r = self.resolution
        noise_const = self.variable('buffers', 'noise_const',
                                    lambda: jax.random.normal(self.make_rng('params'), (r, r)))
        noise = None
        if noise_mode == 'random':
            noise = jax.random.normal(self.make_rng('noise'), (x.shape[0], r, r, 1)) * noise_strength
        elif noise_mode == 'const':
            noise = (noise_const.value * noise_strength)[None, :, :, None]
        elif noise_mode != 'none':
            raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}')
        x = layers.modulated_conv2d(x.astype(self.dtype), weight, styles, up=self.up, padding=1, noise=noise,
                                    precision=self.precision, fp32_precision=self.fc_precision)
        bias = self.param('bias', nn.initializers.zeros, (self.out_channels,))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return layers.bias_act(x, bias, 'lrelu', gain=layers.LRELU_GAIN * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation; linear output."""
    out_channels: int
    conv_clamp: float | None = None
    dtype: Any = jnp.float32
    precision: Any = None
    fc_precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        in_channels = x.shape[-1]
        styles = FullyConnected(in_channels, bias_init=1.0, precision=self.fc_precision,
                                name='affine')(w) * (1 / np.sqrt(in_channels))
        weight = self.param('weight', nn.initializers.normal(1.0), (self.out_channels, in_channels, 1, 1))
        x = layers.modulated_conv2d(x.astype(self.dtype), weight, styles, demodulate=False, precision=self.precision)
        bias = self.param('bias', nn.initializers.zeros, (self.out_channels,))
        return layers.bias_act(x, bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' generator: (const | up-conv0), conv1, torgb; adds to the image."""
    in_channels: int
    out_channels: int
    resolution: int
    img_channels: int
    conv_clamp: float | None = None
    dtype: Any = jnp.float32
    precision: Any = None
    fc_precision: Any = None

    @property
    def num_conv(self) -> int:
        return 1 if self.in_channels == 0 else 2

    @nn.compact
    def __call__(self, x: jax.Array | None, img: jax.Array | None, ws: jax.Array,
                 noise_mode: str = 'random') -> tuple[jax.Array, jax.Array]:
        pk = dict(dtype=self.dtype, precision=self.precision, fc_precision=self.fc_precision)
        kw = dict(resolution=self.resolution, conv_clamp=self.conv_clamp, **pk)
        if self.in_channels == 0:
            const = self.param('const', nn.initializers.normal(1.0), (self.out_channels, 4, 4))
            x = jnp.broadcast_to(jnp.transpose(const, (1, 2, 0))[None], (ws.shape[0], 4, 4, self.out_channels))
            x = SynthesisLayer(self.out_channels, name='conv1', **kw)(x, ws[:, 0], noise_mode)
        else:
            x = SynthesisLayer(self.out_channels, up=2, name='conv0', **kw)(x, ws[:, 0], noise_mode)
            x = SynthesisLayer(self.out_channels, name='conv1', **kw)(x, ws[:, 1], noise_mode)
        if img is not None:
            img = layers.upsample2d(img)
        y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, name='torgb', **pk)(
            x, ws[:, self.num_conv]).astype(jnp.float32)
        img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, R, R, C]."""
    cfg: NetworkConfig

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = 'random') -> jax.Array:
        cfg = self.cfg
        if ws.shape[1] != cfg.num_ws:
            raise ValueError(f'expected ws with {cfg.num_ws} rows, got shape {ws.shape}')
        x = img = None
        w_idx = 0
        res = 4
        while res <= cfg.img_resolution:
            in_ch = cfg.channels(res // 2) if res > 4 else 0
            dtype = cfg.dtype(res, cfg.num_fp16_res)
            block = SynthesisBlock(in_ch, cfg.channels(res), res, cfg.img_channels, cfg.conv_clamp, dtype=dtype,
                                   precision=cfg.precision(dtype), fc_precision=cfg.precision(), name=f'b{res}')
            n = block.num_conv
            x, img = block(x, img, ws[:, w_idx:w_idx + n + 1], noise_mode)
            w_idx += n
            res *= 2
        return img


class Generator(nn.Module):
    """z, c -> images; `mapping` and `synthesis` are also callable on their own (`method=`)."""
    cfg: NetworkConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.num_ws, cfg.mapping_layers,
                                      cfg.mapping_lr_multiplier, cfg.w_avg_beta, precision=cfg.precision())
        self.synthesis = SynthesisNetwork(cfg)

    def __call__(self, z: jax.Array, c: jax.Array | None = None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = 'random') -> jax.Array:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode)

    def map(self, z: jax.Array, c: jax.Array | None = None, truncation_psi: Any = 1.0,
            truncation_cutoff: int | None = None) -> jax.Array:
        return self.mapping(z, c, truncation_psi, truncation_cutoff)

    def synthesize(self, ws: jax.Array, noise_mode: str = 'random') -> jax.Array:
        return self.synthesis(ws, noise_mode)


# --------------------------------------------------------------------------- discriminator

class DiscriminatorBlock(nn.Module):
    """One D resolution (reference DiscriminatorBlock): fromrgb (first block; every block in 'skip'),
    conv0, conv1 (down); 'resnet' adds a 1x1 down-sampling skip and scales the sum by sqrt(0.5);
    'skip' passes the FIR-downsampled image on to the next block."""
    in_channels: int
    tmp_channels: int
    out_channels: int
    architecture: str = 'resnet'
    conv_clamp: float | None = None
    dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array | None, img: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        cc = dict(conv_clamp=self.conv_clamp, dtype=self.dtype, precision=self.precision)
        if x is not None:
            x = x.astype(self.dtype)
        if self.in_channels == 0 or self.architecture == 'skip':
            y = Conv2dLayer(self.tmp_channels, 1, activation='lrelu', name='fromrgb', **cc)(img.astype(self.dtype))
            x = y if x is None else x + y
            img = layers.downsample2d(img) if self.architecture == 'skip' else None
        if self.architecture == 'resnet':
            y = Conv2dLayer(self.out_channels, 1, use_bias=False, down=2, dtype=self.dtype, precision=self.precision,
                            name='skip')(x, gain=np.sqrt(0.5))
            x = Conv2dLayer(self.tmp_channels, 3, activation='lrelu', name='conv0', **cc)(x)
            x = Conv2dLayer(self.out_channels, 3, activation='lrelu', down=2, name='conv1', **cc)(x, gain=np.sqrt(0.5))
            return y + x, img
        x = Conv2dLayer(self.tmp_channels, 3, activation='lrelu', name='conv0', **cc)(x)
        x = Conv2dLayer(self.out_channels, 3, activation='lrelu', down=2, name='conv1', **cc)(x)
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4: (fromrgb in 'skip'), minibatch stddev, conv, fc, out (and the label projection when conditional)."""
    in_channels: int
    cmap_dim: int
    mbstd_group_size: int | None
    mbstd_num_channels: int
    conv_clamp: float | None = None
    architecture: str = 'resnet'
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, img: jax.Array | None, cmap: jax.Array | None) -> jax.Array:
        x = x.astype(jnp.float32)
        if self.architecture == 'skip':
            x = x + Conv2dLayer(self.in_channels, 1, activation='lrelu', precision=self.precision,
                                name='fromrgb')(img.astype(jnp.float32))
        if self.mbstd_num_channels > 0:
            x = layers.minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = Conv2dLayer(self.in_channels, 3, activation='lrelu', conv_clamp=self.conv_clamp, precision=self.precision,
                        name='conv')(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # flatten in NCHW order like the reference
        x = FullyConnected(self.in_channels, activation='lrelu', precision=self.precision, name='fc')(x)
        x = FullyConnected(1 if self.cmap_dim == 0 else self.cmap_dim, precision=self.precision, name='out')(x)
        if self.cmap_dim > 0:
            x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """images [N, R, R, C] (and labels) -> logits [N, 1]."""
    cfg: NetworkConfig

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        num_fp16 = cfg.num_fp16_res if cfg.d_num_fp16_res is None else cfg.d_num_fp16_res
        cmap_dim = 0
        cmap = None
        if cfg.c_dim > 0:
            cmap_dim = cfg.d_cmap_dim or cfg.channels(4)
            if c is None:
                raise ValueError(f'this discriminator is conditional (c_dim={cfg.c_dim}): pass labels c')
            cmap = MappingNetwork(0, cfg.c_dim, cmap_dim, None, cfg.d_mapping_layers, cfg.mapping_lr_multiplier,
                                  None, precision=cfg.precision(), name='mapping')(None, c)
        x = None
        res = cfg.img_resolution
        img = img.astype(jnp.float32)
        while res > 4:
            in_ch = cfg.channels(res) if res < cfg.img_resolution else 0
            dtype = cfg.dtype(res, num_fp16)
            x, img = DiscriminatorBlock(in_ch, cfg.channels(res), cfg.channels(res // 2), cfg.d_architecture,
                                        cfg.conv_clamp, dtype=dtype, precision=cfg.precision(dtype),
                                        name=f'b{res}')(x, img)
            res //= 2
        return DiscriminatorEpilogue(cfg.channels(4), cmap_dim, cfg.mbstd_group_size, cfg.mbstd_num_channels,
                                     cfg.conv_clamp, cfg.d_architecture, precision=cfg.precision(), name='b4')(
            x, img, cmap)


# --------------------------------------------------------------------------- helpers

@functools.partial(jax.jit, static_argnums=0)
def init_generator(cfg: NetworkConfig, key: jax.Array) -> dict:
    """Fresh generator variables {'params': ..., 'buffers': ...} (reference initialisation).

    Jitted (an eager Flax init runs hundreds of small ops, seconds on a CPU); JAX's jit cache keys
    the compiled initialiser on the (hashable) config, so a second call for it does not recompile.
    """
    z = jnp.zeros((1, cfg.z_dim))
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    k1, k2 = jax.random.split(key)
    return flax.core.unfreeze(Generator(cfg).init({'params': k1, 'noise': k2}, z, c))


@functools.partial(jax.jit, static_argnums=0)
def init_discriminator(cfg: NetworkConfig, key: jax.Array) -> dict:
    """Fresh discriminator variables {'params': ...} (jitted like `init_generator`)."""
    img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    return flax.core.unfreeze(Discriminator(cfg).init({'params': key}, img, c))


def param_count(tree: Any) -> int:
    """Number of scalars in a pytree."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))


def flatten_names(tree: dict, prefix: str = '', sep: str = '.') -> dict[str, Any]:
    """{'a': {'b': x}} -> {'a.b': x} (reference state-dict style names; `sep` joins the levels)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f'{prefix}{k}'
        if isinstance(v, dict) or hasattr(v, 'items'):
            out.update(flatten_names(dict(v), name + sep, sep))
        else:
            out[name] = v
    return out


def unflatten_names(flat: dict[str, Any], sep: str = '.') -> dict:
    """Inverse of `flatten_names`."""
    tree: dict = {}
    for name, v in flat.items():
        node = tree
        parts = name.split(sep)
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree

