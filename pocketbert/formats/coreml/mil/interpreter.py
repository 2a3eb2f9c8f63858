"""Execute a :class:`MilProgram` op by op in NumPy, honouring every value's declared dtype.

Constants and ``constexpr_*`` ops (weight decompression: int8 per-channel, block-wise shift/scale) are evaluated
once, when the interpreter is built, as Core ML does at load time. At run time each op gets its inputs (float16
widened to float32), runs its NumPy function from :data:`pocketbert.formats.coreml.mil.ops.OPS`, and its results
are cast to the dtypes the program declares, so fp16 programs round every intermediate tensor to fp16.

An op missing from the registry is refused when the interpreter is built, naming the op: never skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.formats.coreml.mil.ops import NP_DTYPES, OPS
from pocketbert.formats.coreml.mil.package import MilOp, MilProgram, Ref

CONSTEXPR_PREFIX = "constexpr_"


def _widen(value: Any) -> Any:
    """fp16 arrays as float32 (exact); everything else unchanged."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    return value


class MilInterpreter:
    """A loaded program ready to run: ``run({"input_ids": ..., "attention_mask": ...}) -> {output: array}``.

    ``record`` (optional, a dict) receives every op output by value name, for calibration and debugging.
    """

    def __init__(self, program: MilProgram) -> None:
        unknown = sorted(program.op_types() - set(OPS))
        if unknown:
            raise PocketbertError(
                f"MIL op {unknown[0]!r} is not implemented in pocketbert's MIL runner "
                f"({program.path.name} uses {', '.join(unknown)}); parity cannot check this package"
            )
        self.program = program
        self.constants: dict[str, np.ndarray] = {}
        self.ops: list[MilOp] = []
        for mil_op in program.ops:
            if mil_op.type.startswith(CONSTEXPR_PREFIX):
                for name, value in zip((n for n, _ in mil_op.outputs), self._execute(mil_op, self.constants)):
                    self.constants[name] = value
            else:
                self.ops.append(mil_op)
        # fp16 weights are widened to float32 once here (exactly), not on every run
        self._wide = {name: _widen(value) for name, value in self.constants.items()}
        self._inputs = [{key: self._prepare(value) for key, value in op.inputs.items()} for op in self.ops]

    def _prepare(self, value: Any) -> Any:
        """Constant inputs widened ahead of time; references left to resolve at run time."""
        if isinstance(value, list):
            return [self._prepare(v) for v in value]
        if isinstance(value, Ref) and value.name in self._wide:
            return self._wide[value.name]
        return value if isinstance(value, Ref) else _widen(value)

    def _resolve(self, value: Any, env: dict[str, np.ndarray]) -> Any:
        if isinstance(value, Ref):
            if value.name in env:
                return _widen(env[value.name])
            if value.name in self.constants:
                return _widen(self.constants[value.name])
            raise PocketbertError(f"MIL value {value.name!r} is used before it is defined; the package is malformed")
        if isinstance(value, list):
            return [self._resolve(v, env) for v in value]
        return _widen(value)

    def _execute(
        self, mil_op: MilOp, env: dict[str, np.ndarray], inputs: dict[str, Any] | None = None
    ) -> list[np.ndarray]:
        args = {key: self._resolve(value, env) for key, value in (inputs or mil_op.inputs).items()}
        try:
            result = OPS[mil_op.type](**args)
        except PocketbertError:
            raise
        except Exception as exc:
            raise PocketbertError(f"MIL op {mil_op.type} ({mil_op.name}) failed: {exc}") from exc
        results = list(result) if isinstance(result, tuple) else [result]
        if len(results) != len(mil_op.outputs):
            raise PocketbertError(f"MIL op {mil_op.type} ({mil_op.name}) gave {len(results)} outputs")
        return [np.asarray(r).astype(NP_DTYPES[dtype], copy=False) for r, (_, dtype) in zip(results, mil_op.outputs)]

    def run(self, feed: dict[str, np.ndarray], record: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run the program on ``feed`` (input name -> array, cast to the declared input dtypes); returns outputs."""
        env: dict[str, np.ndarray] = {}
        for name, dtype in self.program.inputs.items():
            if name not in feed:
                raise PocketbertError(f"feed has no input {name!r}; the program needs {', '.join(self.program.inputs)}")
            value = np.asarray(feed[name])
            allowed = self.program.shapes.get(name)
            if allowed is not None and not allowed.accepts(value.shape):
                raise PocketbertError(
                    f"input {name} of shape {value.shape} does not fit the package's shapes ({allowed.describe()})"
                )
            env[name] = value.astype(NP_DTYPES[dtype])
        for mil_op, inputs in zip(self.ops, self._inputs):
            for (name, _), value in zip(mil_op.outputs, self._execute(mil_op, env, inputs)):
                env[name] = value
        if record is not None:
            record.update(env)
        return {name: env[name] if name in env else self.constants[name] for name in self.program.outputs}
