"""The op registry: one NumPy function per MIL op, implementing the semantics of coremltools' op definitions.

Each function takes the op's inputs by their MIL parameter names (NumPy arrays, or Python lists for tuple inputs
such as ``concat(values=...)``) and returns one array, or a tuple of arrays for ops with several outputs.

Precision: the interpreter hands float ops their inputs as float32 (fp16 inputs are widened exactly) and rounds
each result to the dtype the program declares for it. So an fp16 program keeps every tensor between ops in fp16,
as on device; inside one op (a matmul's sums, a softmax, a LayerNorm's mean and variance) arithmetic is float32.
Element-wise ops give exactly what native fp16 arithmetic gives (one rounding of the exact result); reductions
accumulate more precisely than an fp16-accumulating kernel would, which the parity gates' fp16 tolerance covers.

Semantics follow ``coremltools/converters/mil/mil/ops/defs/iOS15..iOS18`` (read, not copied).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

OpFn = Callable[..., Any]
OPS: dict[str, OpFn] = {}

# MIL dtype names -> NumPy dtypes (int4/uint4 weights are unpacked to int8/uint8 by the loader)
NP_DTYPES: dict[str, Any] = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int4": np.int8,
    "uint4": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register ``fn`` as the implementation of the MIL ops ``names``."""

    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn

    return register


def _axis(axis: Any, rank: int) -> int:
    axis = int(np.asarray(axis))
    return axis + rank if axis < 0 else axis


def _axes(axes: Any, rank: int) -> tuple[int, ...]:
    return tuple(sorted(_axis(a, rank) for a in np.asarray(axes).reshape(-1)))


# ---- element-wise binary (NumPy broadcasting = MIL broadcasting) ----

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "real_div": np.true_divide,
    "floor_div": np.floor_divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "mod": np.mod,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}


def _binary(fn: Callable[[Any, Any], Any]) -> OpFn:
    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(fn(x, y))

    return run


for _name, _fn in _BINARY.items():
    OPS[_name] = _binary(_fn)


# ---- element-wise unary ----


@op("identity")
def identity(x: np.ndarray) -> np.ndarray:
    return np.array(x, copy=True)


@op("relu")
def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


@op("tanh")
def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@op("sigmoid")
def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@op("exp")
def exp(x: np.ndarray) -> np.ndarray:
    return np.exp(x)


@op("sqrt")
def sqrt(x: np.ndarray) -> np.ndarray:
    return np.sqrt(x)


@op("rsqrt")
def rsqrt(x: np.ndarray, epsilon: Any = 1e-12) -> np.ndarray:
    """``1 / sqrt(x + epsilon)``."""
    return 1.0 / np.sqrt(x + np.asarray(epsilon, dtype=x.dtype))


@op("inverse")
def inverse(x: np.ndarray, epsilon: Any = 1e-4) -> np.ndarray:
    """``1 / (x + epsilon)``."""
    return 1.0 / (x + np.asarray(epsilon, dtype=x.dtype))


@op("log")
def log(x: np.ndarray, epsilon: Any = 1e-45) -> np.ndarray:
    """``log(x + epsilon)``."""
    return np.log(x + np.asarray(epsilon, dtype=x.dtype))


@op("abs")
def abs_(x: np.ndarray) -> np.ndarray:
    return np.abs(x)


@op("square")
def square(x: np.ndarray) -> np.ndarray:
    return x * x


@op("logical_not")
def logical_not(x: np.ndarray) -> np.ndarray:
    return np.logical_not(x)


def erf_array(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (through torch, a pocketbert dependency; NumPy has none)."""
    import torch

    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


@op("erf")
def erf(x: np.ndarray) -> np.ndarray:
    return erf_array(x)


@op("gelu")
def gelu(x: np.ndarray, mode: Any = "EXACT") -> np.ndarray:
    """GELU in its three MIL modes: ``EXACT`` (erf), ``TANH_APPROXIMATION``, ``SIGMOID_APPROXIMATION``."""
    mode = str(np.asarray(mode))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf_array(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * sigmoid(1.702 * x)
    raise ValueError(f"gelu mode {mode!r} is not a MIL gelu mode")


@op("clip")
def clip(x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """``min(max(x, alpha), beta)``."""
    return np.minimum(np.maximum(x, alpha), beta)


@op("select")
def select(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(cond, a, b)


@op("cast")
def cast(x: np.ndarray, dtype: Any) -> np.ndarray:
    """Convert to ``dtype`` (a MIL name such as ``fp16`` or ``int32``); float to int truncates toward zero."""
    return np.asarray(x).astype(NP_DTYPES[str(np.asarray(dtype))])


# ---- activations and normalisation ----


@op("softmax")
def softmax(x: np.ndarray, axis: Any = -1) -> np.ndarray:
    shifted = x - np.max(x, axis=int(np.asarray(axis)), keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=int(np.asarray(axis)), keepdims=True)


@op("layer_norm")
def layer_norm(x: np.ndarray, axes: Any = None, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5) -> np.ndarray:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over ``axes`` (biased variance); ``gamma``/``beta``
    have the shape of the normalised dimensions."""
    rank = x.ndim
    axes_t = _axes(axes, rank) if axes is not None else tuple(range(rank))
    mean = np.mean(x, axis=axes_t, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes_t, keepdims=True)
    out = centred / np.sqrt(var + np.asarray(epsilon, dtype=x.dtype))
    shape = [x.shape[i] if i in axes_t else 1 for i in range(rank)]
    if gamma is not None:
        out = out * np.asarray(gamma).reshape(shape)
    if beta is not None:
        out = out + np.asarray(beta).reshape(shape)
    return out


@op("batch_norm")
def batch_norm(
    x: np.ndarray, mean: Any, variance: Any, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5
) -> np.ndarray:
    """Per-channel affine normalisation with fixed statistics, channel axis 1: ``(x - mean) / sqrt(variance +
    epsilon) * gamma + beta``; ``mean``/``variance``/``gamma``/``beta`` are ``(C,)``. coremltools writes a per-channel
    scale and shift of a ``(B, C, 1, S)`` tensor (the ANE layout's layer-norm weights) as this op."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    out = (x - np.asarray(mean).reshape(shape)) / np.sqrt(np.asarray(variance).reshape(shape) + np.asarray(epsilon))
    if gamma is not None:
        out = out * np.asarray(gamma).reshape(shape)
    if beta is not None:
        out = out + np.asarray(beta).reshape(shape)
    return out


# ---- linear algebra ----


@op("linear")
def linear(x: np.ndarray, weight: np.ndarray, bias: Any = None) -> np.ndarray:
    """``x @ weight.T + bias``; ``weight`` is ``(out, in)``, ``x`` is ``(..., in)``."""
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # one 2-D GEMM: BLAS, whatever x's rank
    out = (flat @ weight.T).reshape(*x.shape[:-1], weight.shape[0])
    return out if bias is None else out + bias


@op("matmul")
def matmul(x: np.ndarray, y: np.ndarray, transpose_x: Any = False, transpose_y: Any = False) -> np.ndarray:
    """Batched matrix product with NumPy broadcasting of the leading axes; rank-1 operands as in ``np.matmul``."""
    if bool(transpose_x) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if bool(transpose_y) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    # contiguous operands: NumPy's batched matmul on strided (transposed) views skips BLAS and is ~100x slower
    return np.matmul(np.ascontiguousarray(x), np.ascontiguousarray(y))


def _einsum_operands(equation: str, ranks: tuple[int, int]) -> None:
    """Check that ``equation`` is the one product MIL's ``einsum`` defines (any letters): rank 4
    ``"nchw,nwhu->nchu"`` or rank 3 ``"chw,whu->chu"``; a one-line ``ValueError`` otherwise."""
    try:
        inputs, output = equation.replace(" ", "").split("->")
        a, b = inputs.split(",")
    except ValueError:
        raise ValueError(f"einsum equation {equation!r} is not of the form 'x,y->z'") from None
    if len(a) == 4 and ranks == (4, 4):
        n, c, h, w = a
        ok = b == n + w + h + b[3] and output == n + c + h + b[3] and len(set(a + b[3])) == 5
    elif len(a) == 3 and ranks == (3, 3):
        c, h, w = a
        ok = b == w + h + b[2] and output == c + h + b[2] and len(set(a + b[2])) == 4
    else:
        ok = False
    if not ok:
        raise ValueError(f"einsum equation {equation!r} is not MIL's nchw,nwhu->nchu (or chw,whu->chu) product")


@op("einsum")
def einsum(values: list[np.ndarray], equation: Any) -> np.ndarray:
    """MIL's einsum: a matrix product over axes -1 of the first and -3 of the second input, the other axes batch
    (size-1 batch axes broadcast). Rank 4: ``x (B, C, H, W1)``, ``y (B, W1, H, W2)`` -> ``(B, C, H, W2)``."""
    x, y = (np.asarray(v) for v in values)
    _einsum_operands(str(np.asarray(equation)), (x.ndim, y.ndim))
    rank3 = x.ndim == 3
    if rank3:
        x, y = x[None], y[None]  # (1, C, H, W1), (1, W1, H, W2)
    xs = np.ascontiguousarray(np.transpose(x, (0, 2, 1, 3)))  # (B, H, C, W1)
    ys = np.ascontiguousarray(np.transpose(y, (0, 2, 1, 3)))  # (B, H, W1, W2)
    out = np.transpose(np.matmul(xs, ys), (0, 2, 1, 3))  # (B, C, H, W2)
    return out[0] if rank3 else out


def _conv_padding(pad_type: str, pad: Any, kernel: tuple[int, ...], dilations: list[int]) -> list[tuple[int, int]]:
    """``(before, after)`` padding per spatial axis for MIL's ``pad_type`` (``valid``, ``custom``, ``same``,
    ``same_lower``), as coremltools' ``conv`` documents it."""
    if pad_type == "valid":
        return [(0, 0)] * len(kernel)
    if pad_type == "custom":
        values = [int(p) for p in np.asarray(pad).reshape(-1)]
        return [(values[2 * i], values[2 * i + 1]) for i in range(len(kernel))]
    if pad_type in ("same", "same_lower"):
        pads = []
        for k, d in zip(kernel, dilations):
            extent = (k - 1) * d + 1
            small, large = (extent - 1) // 2, extent // 2  # equal when the dilated kernel is odd
            pads.append((large, small) if pad_type == "same_lower" else (small, large))
        return pads
    raise ValueError(f"conv pad_type {pad_type!r} is not a MIL pad type")


@op("conv")
def conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Any = None,
    strides: Any = None,
    pad_type: Any = "valid",
    pad: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """Convolution over 1 to 3 spatial axes: ``x (N, C_in, *D)``, ``weight (C_out, C_in / groups, *K)`` ->
    ``(N, C_out, *D_out)``, with strides, dilations, MIL padding modes and channel groups.

    Each kernel offset contributes one batched matrix product (a 1x1 kernel is a single one, the ANE layout's
    linear layers).
    """
    spatial = x.ndim - 2
    kernel = tuple(int(k) for k in weight.shape[2:])
    if len(kernel) != spatial or not 1 <= spatial <= 3:
        raise ValueError(f"conv weight {weight.shape} does not fit input {x.shape}")
    step = [1] * spatial if strides is None else [int(s) for s in np.asarray(strides).reshape(-1)]
    dil = [1] * spatial if dilations is None else [int(d) for d in np.asarray(dilations).reshape(-1)]
    pads = _conv_padding(str(np.asarray(pad_type)), pad, kernel, dil)
    padded = np.pad(x, [(0, 0), (0, 0), *pads]) if any(p for pair in pads for p in pair) else x
    sizes = [(padded.shape[2 + i] - (kernel[i] - 1) * dil[i] - 1) // step[i] + 1 for i in range(spatial)]
    g = int(np.asarray(groups))
    c_in, c_out = weight.shape[1], weight.shape[0] // g
    n = x.shape[0]
    out = np.zeros((n, g, c_out, int(np.prod(sizes))), dtype=np.float32)  # (N, groups, C_out / groups, prod(D_out))
    for offsets in itertools.product(*(range(k) for k in kernel)):
        window = tuple(
            slice(o * dil[i], o * dil[i] + (sizes[i] - 1) * step[i] + 1, step[i]) for i, o in enumerate(offsets)
        )
        patch = np.ascontiguousarray(padded[(slice(None), slice(None), *window)]).reshape(n, g, c_in, -1)
        taps = weight[(slice(None), slice(None), *offsets)].reshape(g, c_out, c_in)  # (groups, C_out/g, C_in/g)
        out += np.matmul(taps, patch)  # (N, groups, C_out / groups, prod(D_out))
    out = out.reshape(n, g * c_out, *sizes)
    if bias is not None:
        out = out + np.asarray(bias).reshape(1, -1, *([1] * spatial))
    return out


# ---- shapes and data movement ----


@op("shape")
def shape(x: np.ndarray) -> np.ndarray:
    return np.asarray(x.shape, dtype=np.int32)


@op("reshape")
def reshape(x: np.ndarray, shape: Any) -> np.ndarray:
    """Reshape; ``-1`` infers one dimension and ``0`` keeps ``x``'s dimension when the ranks are equal."""
    target = [int(s) for s in np.asarray(shape).reshape(-1)]
    if len(target) == x.ndim:
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return np.reshape(x, target)


@op("transpose")
def transpose(x: np.ndarray, perm: Any) -> np.ndarray:
    return np.transpose(x, [_axis(p, x.ndim) for p in np.asarray(perm).reshape(-1)])


@op("expand_dims")
def expand_dims(x: np.ndarray, axes: Any) -> np.ndarray:
    """Insert size-1 axes; negative axes count in the output's rank."""
    out_rank = x.ndim + np.asarray(axes).size
    return np.expand_dims(x, _axes(axes, out_rank))


@op("squeeze")
def squeeze(x: np.ndarray, axes: Any = None) -> np.ndarray:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=_axes(axes, x.ndim))


@op("concat")
def concat(values: list[np.ndarray], axis: Any, interleave: Any = False) -> np.ndarray:
    """Join along ``axis``; ``interleave`` alternates slices of equal-shaped inputs."""
    arrays = [np.asarray(v) for v in values]
    rank = max(a.ndim for a in arrays)
    arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
    ax = _axis(axis, max(rank, 1))
    if not bool(interleave):
        return np.concatenate(arrays, axis=ax)
    stacked = np.stack(arrays, axis=ax + 1)
    shape = list(arrays[0].shape)
    shape[ax] *= len(arrays)
    return stacked.reshape(shape)


@op("split")
def split(x: np.ndarray, axis: Any, num_splits: Any = None, split_sizes: Any = None) -> tuple[np.ndarray, ...]:
    ax = _axis(axis, x.ndim)
    if split_sizes is not None:
        bounds = np.cumsum(np.asarray(split_sizes).reshape(-1))[:-1]
        return tuple(np.split(x, bounds, axis=ax))
    return tuple(np.split(x, int(np.asarray(num_splits)), axis=ax))


@op("slice_by_index")
def slice_by_index(
    x: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    """``x[begin[i]:end[i]:stride[i], ...]`` with masks ignoring ``begin``/``end`` and ``squeeze_mask`` indexing."""
    rank = x.ndim
    begin = np.asarray(begin).reshape(-1)
    end = np.asarray(end).reshape(-1)
    stride = np.ones(rank, int) if stride is None else np.asarray(stride).reshape(-1)
    begin_mask = np.zeros(rank, bool) if begin_mask is None else np.asarray(begin_mask).reshape(-1)
    end_mask = np.zeros(rank, bool) if end_mask is None else np.asarray(end_mask).reshape(-1)
    squeeze_mask = np.zeros(rank, bool) if squeeze_mask is None else np.asarray(squeeze_mask).reshape(-1)
    index: list[Any] = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(int(begin[i]))
            continue
        step = int(stride[i])
        start = None if begin_mask[i] else int(begin[i])
        stop = None if end_mask[i] else int(end[i])
        index.append(slice(start, stop, step))
    return np.asarray(x[tuple(index)])


@op("slice_by_size")
def slice_by_size(x: np.ndarray, begin: Any, size: Any) -> np.ndarray:
    """``x[begin[i] : begin[i] + size[i]]`` per axis; ``size[i] == -1`` runs to the end."""
    index = []
    for b, s in zip(np.asarray(begin).reshape(-1), np.asarray(size).reshape(-1)):
        index.append(slice(int(b), None if int(s) == -1 else int(b) + int(s)))
    return np.asarray(x[tuple(index)])


@op("gather")
def gather(
    x: np.ndarray, indices: Any, axis: Any = 0, batch_dims: Any = 0, validate_indices: Any = False
) -> np.ndarray:
    """Take ``indices`` along ``axis`` (negative indices count from the end); ``batch_dims`` leading axes shared."""
    ax = _axis(axis, x.ndim)
    idx = np.asarray(indices).astype(np.int64)
    size = x.shape[ax]
    if np.any(idx >= size) or np.any(idx < -size):
        raise ValueError(f"gather index out of range for axis of size {size}")
    idx = np.where(idx < 0, idx + size, idx)
    nb = int(np.asarray(batch_dims))
    if nb == 0:
        return np.take(x, idx, axis=ax)
    out = [gather(x[b], idx[b], ax - 1, nb - 1) for b in range(x.shape[0])]
    return np.stack(out)


@op("gather_along_axis")
def gather_along_axis(x: np.ndarray, indices: Any, axis: Any = 0, validate_indices: Any = False) -> np.ndarray:
    ax = _axis(axis, x.ndim)
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[ax], idx)
    return np.take_along_axis(x, idx, axis=ax)


@op("tile")
def tile(x: np.ndarray, reps: Any) -> np.ndarray:
    return np.tile(x, [int(r) for r in np.asarray(reps).reshape(-1)])


@op("fill")
def fill(shape: Any, value: Any = 0.0) -> np.ndarray:
    return np.full([int(s) for s in np.asarray(shape).reshape(-1)], value)


@op("range_1d")
def range_1d(end: Any, start: Any, step: Any) -> np.ndarray:
    return np.arange(np.asarray(start), np.asarray(end), np.asarray(step))


# ---- reductions ----


def _reduce(fn: Callable[..., Any]) -> OpFn:
    def run(x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> np.ndarray:
        ax = None if axes is None else _axes(axes, x.ndim)
        return np.asarray(fn(x, axis=ax, keepdims=bool(keep_dims)))

    return run


OPS["reduce_sum"] = _reduce(np.sum)
OPS["reduce_mean"] = _reduce(np.mean)
OPS["reduce_max"] = _reduce(np.max)
OPS["reduce_min"] = _reduce(np.min)
OPS["reduce_prod"] = _reduce(np.prod)


@op("reduce_l2_norm")
def reduce_l2_norm(x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> np.ndarray:
    ax = None if axes is None else _axes(axes, x.ndim)
    return np.sqrt(np.sum(x * x, axis=ax, keepdims=bool(keep_dims)))


@op("reduce_argmax")
def reduce_argmax(x: np.ndarray, axis: Any = -1, keep_dims: Any = False) -> np.ndarray:
    out = np.argmax(x, axis=int(np.asarray(axis)))
    return np.expand_dims(out, int(np.asarray(axis))) if bool(keep_dims) else out


# ---- quantization ----


def _per_axis(param: np.ndarray, rank: int, axis: Any) -> np.ndarray:
    """A scalar, or a vector along ``axis``, shaped to broadcast against a rank-``rank`` tensor."""
    param = np.asarray(param)
    if param.ndim == 0 or param.ndim == rank:
        return param
    shape = [1] * rank
    shape[_axis(axis, rank)] = param.size
    return param.reshape(shape)


@op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(quantized_data: np.ndarray, zero_point: Any, scale: Any, axis: Any) -> np.ndarray:
    """iOS16 weight decompression: ``scale * (quantized_data - zero_point)``, per tensor or per ``axis`` channel."""
    rank = quantized_data.ndim
    zp = _per_axis(zero_point, rank, axis).astype(np.float32)
    return (quantized_data.astype(np.float32) - zp) * _per_axis(scale, rank, axis).astype(np.float32)


def _expand_blocks(param: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Repeat each block parameter over its block: ``param.shape[i]`` must divide ``shape[i]``."""
    for i, (n, m) in enumerate(zip(shape, param.shape)):
        if n % m:
            raise ValueError(f"block parameter dim {i} ({m}) does not divide data dim ({n})")
        param = np.repeat(param, n // m, axis=i)
    return param


@op("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(data: np.ndarray, scale: np.ndarray, offset: Any = None) -> np.ndarray:
    """iOS18 weight decompression: ``scale * (data - offset)`` with block size ``data.shape / scale.shape``."""
    values = data.astype(np.float32)
    if offset is not None:
        values = values - _expand_blocks(np.asarray(offset).astype(np.float32), data.shape)
    return values * _expand_blocks(np.asarray(scale).astype(np.float32), data.shape)


@op("quantize")
def quantize(input: np.ndarray, scale: Any, output_dtype: Any, zero_point: Any = None, axis: Any = None) -> np.ndarray:
    """iOS17 activation quantization: ``clip(round(input / scale) + zero_point)`` to int8 or uint8."""
    dtype = NP_DTYPES[str(np.asarray(output_dtype))]
    info = np.iinfo(dtype)
    q = np.round(input / _per_axis(scale, input.ndim, axis))
    if zero_point is not None:
        q = q + _per_axis(zero_point, input.ndim, axis).astype(np.float32)
    return np.clip(q, info.min, info.max).astype(dtype)


@op("dequantize")
def dequantize(input: np.ndarray, scale: Any, zero_point: Any = None, axis: Any = None) -> np.ndarray:
    """iOS17 activation dequantization: ``scale * (input - zero_point)``."""
    values = input.astype(np.float32)
    if zero_point is not None:
        values = values - _per_axis(zero_point, input.ndim, axis).astype(np.float32)
    return values * _per_axis(scale, input.ndim, axis)
