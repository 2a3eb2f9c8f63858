"""Layer probes of a ``.pte`` for ``pocketbert diagnose``: every layer norm's output, as the artifact computed it.

How: the unchanged program runs under ExecuTorch's own event tracer (ETDump) with a debug buffer, the
runtime's mechanism for recording intermediate values. At that debug level the runtime copies the outputs of every
kernel call into the debug buffer right after the kernel writes them, so later ops that reuse the memory cannot
change what was recorded. The layer norms run as ExecuTorch kernels (``aten::native_layer_norm.out``, which the
XNNPACK partitioner does not delegate), so each one is a kernel call whose first logged output (``out0``) is the
normalized tensor. This module finds those kernel calls in the program, and :func:`layer_norm_outputs` reads their
values back from the ETDump and the debug buffer, in execution order.

Why not a probed copy of the program (extra method outputs, their tensors moved to their own memory region)? That
would run a re-planned, re-serialized program instead of the artifact: a memory-plan or serialization fault of the
artifact would not show, and the copy would add faults of its own. The ETDump route runs the artifact's bytes.

Three properties of the runtime (executorch 1.5) shape how it is used, see :class:`ProgramProbes`:

* the debug buffer has a fixed size, and a run that logs more than it holds aborts the process, so its size is an
  upper bound computed from the program (:attr:`ProgramProbes.buffer_bytes`), never a guess;
* it is not reset after the ETDump is written, and the tracer cannot record again after that, so every run gets
  a freshly loaded program;
* ExecuTorch's ``Inspector`` merges runs on the assumption that they repeat one input, which rows of different
  lengths are not, so the ETDump is read directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError

LAYER_NORM_OPS = ("aten::native_layer_norm", "aten::layer_norm")
ALIGNMENT = 64  # bytes: the debug buffer's data sink aligns every tensor it stores
SLACK = 1 << 20  # bytes added to the bound, for what the tracer stores besides tensor data
ELEMENT_BYTES = {  # ExecuTorch ScalarType value -> bytes per element; an unknown type counts as 16
    0: 1,  # BYTE
    1: 1,  # CHAR
    2: 2,  # SHORT
    3: 4,  # INT
    4: 8,  # LONG
    5: 2,  # HALF
    6: 4,  # FLOAT
    7: 8,  # DOUBLE
    11: 1,  # BOOL
    12: 1,  # QINT8
    13: 1,  # QUINT8
    14: 4,  # QINT32
    15: 2,  # BFLOAT16
}
FLOAT = 6
EXECUTE_BLOCK = "Execute"


@dataclass(frozen=True)
class ProgramProbes:
    """What probing one method of a program needs, read from the ``.pte`` itself.

    Attributes:
        method: the method's name (``forward``, ``seq_16``).
        steps: ``(chain index, instruction index)`` of every layer-norm kernel call, in execution order.
        buffer_bytes: an upper bound in bytes of what one run logs into the debug buffer: every non-constant
            tensor a kernel call takes (inputs and outputs; only outputs are logged), every tensor a delegate call
            takes (all of them are logged), the method's outputs, each at its planned (largest) size and aligned,
            plus :data:`SLACK`.
    """

    method: str
    steps: tuple[tuple[int, int], ...]
    buffer_bytes: int


def _tensor_bytes(tensor: Any) -> int:
    count = math.prod(int(s) for s in tensor.sizes)
    return count * ELEMENT_BYTES.get(int(tensor.scalar_type), 16) + ALIGNMENT


def _logged_bytes(values: list[Any], indices: list[int], constants: bool) -> int:
    """Bytes the tensors at ``indices`` (a TensorList's items included) take in the debug buffer; a constant
    (``data_buffer_idx > 0``) counts only when ``constants``."""
    total = 0
    for index in indices:
        value = values[index].val
        kind = type(value).__name__
        if kind == "Tensor" and (constants or int(value.data_buffer_idx) == 0):
            total += _tensor_bytes(value)
        elif kind == "TensorList":
            total += _logged_bytes(values, list(value.items), constants)
    return total


def read_program_probes(path: Path | str, methods: list[str]) -> dict[str, ProgramProbes]:
    """The layer-norm kernel calls and the debug-buffer bound of each of ``methods`` of the ``.pte`` at ``path``.

    Only the program's flatbuffer is parsed (the weights live in segments it points to), a few milliseconds for
    a program of any size.

    Raises:
        PocketbertError: the file is not an ExecuTorch program, lacks a method, or a method has no layer norm
            outside the XNNPACK delegate (nothing to probe).
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        program = deserialize_pte_binary(Path(path).read_bytes()).program
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same one-line error
        raise PocketbertError(f"cannot read the ExecuTorch program {path}: {str(exc).splitlines()[0]}") from exc
    plans = {plan.name: plan for plan in program.execution_plan}
    found: dict[str, ProgramProbes] = {}
    for method in methods:
        plan = plans.get(method)
        if plan is None:
            raise PocketbertError(f"{path} has no method {method} (has {', '.join(sorted(plans))})")
        steps: list[tuple[int, int]] = []
        total = SLACK + _logged_bytes(plan.values, list(plan.outputs), True)
        for c, chain in enumerate(plan.chains):
            for i, instruction in enumerate(chain.instructions):
                args = instruction.instr_args
                kind = type(args).__name__
                if kind == "KernelCall":
                    total += _logged_bytes(plan.values, list(args.args), False)
                    if plan.operators[args.op_index].name in LAYER_NORM_OPS:
                        steps.append((c, i))
                elif kind == "DelegateCall":
                    total += _logged_bytes(plan.values, list(args.args), True)
        if not steps:
            raise PocketbertError(f"{path}: method {method} runs no layer norm outside the XNNPACK delegate to probe")
        found[method] = ProgramProbes(method, tuple(steps), total)
    return found


def _array(tensor: Any, buffer: memoryview, where: str) -> np.ndarray:
    sizes = [int(s) for s in tensor.sizes]
    if int(tensor.scalar_type) != FLOAT:
        raise PocketbertError(f"{where}: the layer norm output is {tensor.scalar_type}, not float32")
    contiguous = [math.prod(sizes[d + 1 :]) for d in range(len(sizes))]
    strides = [int(s) for s in tensor.strides or contiguous]
    if any(n > 1 and s != c for n, s, c in zip(sizes, strides, contiguous)):  # a size-1 axis has any stride
        raise PocketbertError(f"{where}: the layer norm output has strides {tensor.strides}, not contiguous")
    count = math.prod(sizes)
    data = np.frombuffer(buffer, dtype=np.float32, count=count, offset=int(tensor.offset or 0))
    return data.reshape(sizes).copy()


def layer_norm_outputs(etdump: Path, debug_buffer: Path, probes: ProgramProbes) -> list[np.ndarray]:
    """The output of each layer norm of the one run recorded in ``etdump`` (its tensor data in ``debug_buffer``),
    in execution order: float32 arrays of the shape the kernel produced, ``(1, S, H)`` for pocketbert's programs
    (``S`` the length the method ran at, ``H`` the hidden size).

    Raises:
        PocketbertError: the ETDump does not hold exactly one run, or a layer norm logged no tensor.
    """
    from executorch.devtools.etdump.serialize import deserialize_from_etdump_flatcc

    dump = deserialize_from_etdump_flatcc(Path(etdump).read_bytes())
    runs = [run for run in dump.run_data if run.name == EXECUTE_BLOCK]
    if len(runs) != 1:
        raise PocketbertError(f"{etdump}: {len(runs)} recorded runs of {probes.method}, expected 1")
    first: dict[tuple[int, int], Any] = {}
    for event in runs[0].events or []:
        debug = event.debug_event
        if debug is None or debug.debug_entry.tensor is None:
            continue
        first.setdefault((int(debug.chain_index), int(debug.instruction_id)), debug.debug_entry.tensor)
    buffer = memoryview(Path(debug_buffer).read_bytes())
    values = []
    for step in probes.steps:
        where = f"{probes.method} instruction {step[0]}:{step[1]}"
        if step not in first:
            raise PocketbertError(f"{where}: the layer norm logged no output (is the runtime's event tracer on?)")
        values.append(_array(first[step], buffer, where))
    return values
