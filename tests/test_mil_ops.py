"""The MIL runner's op registry against PyTorch / NumPy references, and the interpreter's dtype handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pocketbert.errors import PocketbertError
from pocketbert.formats.coreml.mil.interpreter import MilInterpreter
from pocketbert.formats.coreml.mil.ops import OPS
from pocketbert.formats.coreml.mil.package import MilOp, MilProgram, Ref

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def test_layer_norm_matches_torch():
    x, g, b = rand(2, 5, 8), rand(8), rand(8)
    ref = F.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(g), torch.from_numpy(b), eps=1e-5)
    close(OPS["layer_norm"](x, axes=np.array([-1]), gamma=g, beta=b, epsilon=np.float32(1e-5)), ref)


def test_batch_norm_matches_torch():
    x, mean, var, g, b = rand(2, 6, 1, 5), rand(6), np.abs(rand(6)) + 0.1, rand(6), rand(6)
    ref = F.batch_norm(torch.from_numpy(x), *(torch.from_numpy(t) for t in (mean, var, g, b)), eps=1e-3)
    out = OPS["batch_norm"](x, mean=mean, variance=var, gamma=g, beta=b, epsilon=np.float32(1e-3))
    close(out, ref)
    close(OPS["batch_norm"](x, mean=np.zeros(6), variance=np.ones(6), epsilon=0.0), x)


@pytest.mark.parametrize(("mode", "approximate"), [("EXACT", "none"), ("TANH_APPROXIMATION", "tanh")])
def test_gelu_modes_match_torch(mode, approximate):
    x = rand(4, 7) * 3
    close(OPS["gelu"](x, mode=np.str_(mode)), F.gelu(torch.from_numpy(x), approximate=approximate))
    close(OPS["gelu"](x, mode="SIGMOID_APPROXIMATION"), x * torch.sigmoid(torch.from_numpy(1.702 * x)).numpy())


def test_softmax_linear_and_matmul_match_torch():
    x = rand(2, 3, 4, 5)
    close(OPS["softmax"](x, axis=np.int32(-1)), torch.softmax(torch.from_numpy(x), -1))
    close(OPS["softmax"](x, axis=np.int32(1)), torch.softmax(torch.from_numpy(x), 1))
    w, b = rand(6, 5), rand(6)
    close(OPS["linear"](x, weight=w, bias=b), F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)))
    y = rand(2, 1, 6, 5)
    ref = torch.matmul(torch.from_numpy(x), torch.from_numpy(y).transpose(-1, -2))
    close(OPS["matmul"](x, y, transpose_x=False, transpose_y=True), ref)
    close(OPS["matmul"](x.swapaxes(-1, -2), y, transpose_x=True, transpose_y=True), ref)


@pytest.mark.parametrize(
    ("kwargs", "torch_kwargs"),
    [
        ({"pad_type": "valid"}, {}),
        (
            {"strides": np.array([2, 1]), "pad_type": "custom", "pad": np.array([1, 1, 0, 2]), "dilations": [1, 2]},
            {"stride": (2, 1), "padding": 0, "dilation": (1, 2)},
        ),
        ({"pad_type": "same", "groups": np.int32(2)}, {"padding": "same", "groups": 2}),
    ],
)
def test_conv_matches_torch(kwargs, torch_kwargs):
    x, b = rand(2, 6, 5, 7), rand(4)
    w = rand(4, 6 // int(kwargs.get("groups", 1)), 3, 2)
    tx = torch.from_numpy(x)
    if kwargs.get("pad_type") == "custom":  # MIL pads (top, bottom, left, right); torch pads symmetric only
        tx = F.pad(tx, (0, 2, 1, 1))
    ref = F.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), **torch_kwargs)
    close(OPS["conv"](x, w, bias=b, **kwargs), ref, tol=1e-4)


def test_pointwise_conv_is_the_ane_layout_linear_and_conv1d_works():
    x, w, b = rand(1, 8, 1, 5), rand(3, 8, 1, 1), rand(3)  # (B, C, 1, S) and a 1x1 kernel
    ref = F.linear(torch.from_numpy(x[0, :, 0, :].T.copy()), torch.from_numpy(w[:, :, 0, 0]), torch.from_numpy(b))
    close(OPS["conv"](x, w, bias=b, pad_type="valid")[0, :, 0, :].T, ref, tol=1e-5)  # (S, out) both
    x1, w1 = rand(2, 4, 9), rand(5, 4, 3)
    close(
        OPS["conv"](x1, w1, pad_type="valid", strides=[2]),
        F.conv1d(torch.from_numpy(x1), torch.from_numpy(w1), stride=2),
    )
    with pytest.raises(ValueError, match="not a MIL pad type"):
        OPS["conv"](x1, w1, pad_type="reflect")


def test_einsum_matches_torch_in_both_mil_forms():
    keys, queries = rand(2, 7, 1, 4), rand(2, 4, 1, 5)  # (B, S_k, 1, d) and (B, d, 1, S_q): the ANE attention scores
    ref = torch.einsum("bkhd,bdhq->bkhq", torch.from_numpy(keys), torch.from_numpy(queries))
    close(OPS["einsum"]([keys, queries], equation=np.str_("bkhd,bdhq->bkhq")), ref)
    a, b = rand(3, 1, 4), rand(4, 2, 6)  # rank 3 with the middle axis broadcast
    close(
        OPS["einsum"]([a, b], equation="chw,whu->chu"),
        torch.einsum("chw,whu->chu", torch.from_numpy(a).expand(3, 2, 4), torch.from_numpy(b)),
    )
    with pytest.raises(ValueError, match="not MIL's nchw,nwhu->nchu"):
        OPS["einsum"]([keys, queries], equation="bkhd,bqhd->bkhq")


def test_elementwise_and_reductions_match_numpy():
    x, y = rand(3, 4), rand(1, 4)
    close(OPS["add"](x, y), x + y)
    close(OPS["sub"](x, y), x - y)
    close(OPS["mul"](x, y), x * y)
    close(OPS["real_div"](x, y), x / y)
    close(OPS["maximum"](x, y), np.maximum(x, y))
    close(OPS["pow"](np.abs(x), np.float32(0.5)), np.sqrt(np.abs(x)))
    close(OPS["sqrt"](np.abs(x)), np.sqrt(np.abs(x)))
    close(OPS["rsqrt"](np.abs(x), epsilon=np.float32(1e-3)), 1 / np.sqrt(np.abs(x) + 1e-3))
    close(OPS["tanh"](x), np.tanh(x))
    close(OPS["relu"](x), np.maximum(x, 0))
    close(OPS["erf"](x), torch.erf(torch.from_numpy(x)))
    close(OPS["clip"](x, alpha=np.float32(-0.5), beta=np.float32(0.5)), np.clip(x, -0.5, 0.5))
    close(OPS["select"](x > 0, x, y), np.where(x > 0, x, y))
    assert OPS["less"](x, y).dtype == np.bool_
    close(OPS["reduce_sum"](x, axes=np.array([1]), keep_dims=True), x.sum(1, keepdims=True))
    close(OPS["reduce_mean"](x, axes=np.array([-1]), keep_dims=False), x.mean(-1))
    close(OPS["reduce_max"](x, axes=None), x.max())
    close(OPS["reduce_l2_norm"](x, axes=np.array([1])), np.linalg.norm(x, axis=1))


def test_cast_truncates_and_names_mil_dtypes():
    out = OPS["cast"](np.array([1.7, -1.7, 2.0], np.float32), dtype=np.str_("int32"))
    assert out.dtype == np.int32 and out.tolist() == [1, -1, 2]
    assert OPS["cast"](np.array([1, 0]), dtype="fp16").dtype == np.float16


def test_reshape_transpose_and_dims():
    x = rand(2, 3, 4)
    assert OPS["reshape"](x, shape=np.array([0, -1, 2])).shape == (2, 6, 2)
    assert OPS["reshape"](x, shape=np.array([6, 4])).shape == (6, 4)
    close(OPS["transpose"](x, perm=np.array([0, -1, 1])), x.transpose(0, 2, 1))
    assert OPS["expand_dims"](x, axes=np.array([-1])).shape == (2, 3, 4, 1)
    assert OPS["expand_dims"](x, axes=np.array([1, 2])).shape == (2, 1, 1, 3, 4)
    assert OPS["squeeze"](x[:, :1], axes=np.array([1])).shape == (2, 4)
    assert OPS["shape"](x).tolist() == [2, 3, 4] and OPS["shape"](x).dtype == np.int32


def test_slice_by_index_masks_and_squeeze():
    x = rand(3, 5, 4)
    out = OPS["slice_by_index"](
        x,
        begin=np.array([0, 1, 2]),
        end=np.array([0, 4, 0]),
        stride=np.array([1, 2, 1]),
        begin_mask=np.array([True, False, False]),
        end_mask=np.array([True, False, True]),
        squeeze_mask=np.array([False, False, False]),
    )
    close(out, x[:, 1:4:2, 2:])
    last = OPS["slice_by_index"](
        x, begin=np.array([0, 0, -1]), end=np.array([0, 0, 0]), end_mask=[1, 1, 0], squeeze_mask=[0, 0, 1]
    )
    close(last, x[:, :, -1])
    close(OPS["slice_by_size"](x, begin=np.array([1, 0, 1]), size=np.array([2, -1, 2])), x[1:3, :, 1:3])


def test_gather_concat_split_tile():
    table = rand(10, 4)
    ids = np.array([[1, 9, -1]], np.int32)
    close(OPS["gather"](table, ids, axis=np.int32(0)), table[[[1, 9, 9]]])
    with pytest.raises(ValueError, match="out of range"):
        OPS["gather"](table, np.array([10]), axis=0)
    shape = np.array([2, 7], np.int32)
    assert OPS["gather"](shape, np.int32(1), axis=0) == 7
    batched = OPS["gather"](rand(2, 5, 3), np.array([[0, 4], [1, 1]]), axis=1, batch_dims=1)
    assert batched.shape == (2, 2, 3)
    a, b = rand(2, 3), rand(2, 3)
    close(OPS["concat"]([a, b], axis=np.int32(-1)), np.concatenate([a, b], -1))
    close(OPS["concat"]([a, b], axis=1, interleave=True), np.stack([a, b], 2).reshape(2, 6))
    assert OPS["concat"]([np.int32(2), np.array([3, 4], np.int32)], axis=0).tolist() == [2, 3, 4]
    parts = OPS["split"](rand(4, 6), axis=1, split_sizes=np.array([1, 5]))
    assert [p.shape for p in parts] == [(4, 1), (4, 5)]
    assert OPS["tile"](a, reps=np.array([1, 2])).shape == (2, 6)


def test_weight_dequantization_ops():
    q = RNG.integers(-127, 128, size=(4, 6)).astype(np.int8)
    scale = np.abs(rand(4)) + 0.01
    out = OPS["constexpr_affine_dequantize"](q, zero_point=np.int8(0), scale=scale.astype(np.float16), axis=0)
    close(out, q * scale.astype(np.float16).astype(np.float32)[:, None])
    zp = np.array([1, -2, 0, 3], np.int8)
    out = OPS["constexpr_affine_dequantize"](q, zero_point=zp, scale=scale, axis=np.int32(0))
    close(out, (q.astype(np.float32) - zp[:, None]) * scale[:, None])
    block_scale = np.abs(rand(4, 2)) + 0.01  # blocks of 3 along axis 1
    out = OPS["constexpr_blockwise_shift_scale"](q, scale=block_scale)
    close(out[:, :3], q[:, :3] * block_scale[:, :1])
    close(out[:, 3:], q[:, 3:] * block_scale[:, 1:])
    with pytest.raises(ValueError, match="does not divide"):
        OPS["constexpr_blockwise_shift_scale"](q, scale=rand(4, 4))


def test_activation_quantize_dequantize_roundtrip():
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    q = OPS["quantize"](x, scale=np.float32(2 / 127), output_dtype=np.str_("int8"))
    assert q.dtype == np.int8 and q.min() == -127 and q.max() == 127
    close(OPS["dequantize"](q, scale=np.float32(2 / 127)), x, tol=2 / 127)
    clipped = OPS["quantize"](np.array([100.0], np.float32), scale=np.float32(0.1), output_dtype="int8")
    assert clipped.tolist() == [127]
    u = OPS["quantize"](x, scale=np.float32(4 / 255), zero_point=np.uint8(128), output_dtype="uint8")
    close(OPS["dequantize"](u, scale=np.float32(4 / 255), zero_point=np.uint8(128)), x, tol=4 / 255)


def _program(ops, inputs, outputs):
    return MilProgram(path=Path("test.mlpackage"), opset="CoreML6", inputs=inputs, ops=ops, outputs=outputs)


def test_interpreter_rounds_fp16_values_between_ops():
    ops = [
        MilOp("cast", "c", {"x": Ref("x"), "dtype": np.str_("fp16")}, [("x16", "fp16")]),
        MilOp("add", "a", {"x": Ref("x16"), "y": np.float16(1.0)}, [("y16", "fp16")]),
        MilOp("sub", "s", {"x": Ref("y16"), "y": np.float16(2048.0)}, [("d16", "fp16")]),
        MilOp("cast", "o", {"x": Ref("d16"), "dtype": np.str_("fp32")}, [("out", "fp32")]),
    ]
    program = _program(ops, {"x": "fp32"}, ["out"])
    out = MilInterpreter(program).run({"x": np.array([2048.0], np.float32)})["out"]
    assert out.dtype == np.float32 and out.tolist() == [0.0], "2048 + 1 rounds back to 2048 in fp16"
    fp32_ops = [MilOp("add", "a", {"x": Ref("x"), "y": np.float32(1.0)}, [("out", "fp32")])]
    exact = MilInterpreter(_program(fp32_ops, {"x": "fp32"}, ["out"])).run({"x": np.array([2048.0])})["out"]
    assert exact.tolist() == [2049.0]


def test_interpreter_evaluates_constexpr_once_and_feeds_inputs_by_dtype():
    q = np.array([[1, -2], [3, 4]], np.int8)
    ops = [
        MilOp(
            "constexpr_affine_dequantize",
            "w",
            {"quantized_data": q, "zero_point": np.int8(0), "scale": np.float16(0.5), "axis": np.int32(0)},
            [("w16", "fp16")],
        ),
        MilOp("cast", "c", {"x": Ref("ids"), "dtype": np.str_("fp16")}, [("x16", "fp16")]),
        MilOp("matmul", "m", {"x": Ref("x16"), "y": Ref("w16")}, [("out", "fp16")]),
    ]
    interpreter = MilInterpreter(_program(ops, {"ids": "int32"}, ["out"]))
    assert [o.type for o in interpreter.ops] == ["cast", "matmul"] and "w16" in interpreter.constants
    out = interpreter.run({"ids": np.array([[1, 1]], np.int64)})["out"]
    assert out.dtype == np.float16 and out.tolist() == [[2.0, 1.0]]
    with pytest.raises(PocketbertError, match="feed has no input 'ids'"):
        interpreter.run({"input_ids": np.zeros((1, 2))})


def test_unknown_op_is_refused_by_name():
    ops = [MilOp("frobnicate", "f", {"x": Ref("x")}, [("out", "fp32")])]
    with pytest.raises(PocketbertError, match="MIL op 'frobnicate' is not implemented"):
        MilInterpreter(_program(ops, {"x": "fp32"}, ["out"]))


def test_a_failing_op_names_itself():
    ops = [MilOp("reshape", "bad_reshape", {"x": Ref("x"), "shape": np.array([5])}, [("out", "fp32")])]
    with pytest.raises(PocketbertError, match=r"MIL op reshape \(bad_reshape\) failed"):
        MilInterpreter(_program(ops, {"x": "fp32"}, ["out"])).run({"x": np.zeros(4, np.float32)})
