"""ExecuTorch runner: a ``.pte`` from :func:`pocketbert.formats.executorch.lower.lower`, run by
``executorch.runtime`` (the C++ runtime's Python bindings, with the XNNPACK backend and the quantized kernels).

Bucket methods (``seq_<n>``) are static-shape batch-1 programs, so a ``(B, S)`` feed runs row by row, each row in
the smallest bucket that holds its real tokens (:func:`pocketbert.core.buckets.run_bucketed`). A dynamic method
(``forward``) runs each row at its own true length: the row is cut to its real tokens, run, and per-token outputs
are zero-padded back to ``S``.

Threads: ExecuTorch has one process-wide threadpool (``executorch.extension.pybindings.portable_lib.
_unsafe_reset_threadpool``), and XNNPACK binds each delegate to that pool when its method loads. So ``threads``
is applied before this runner loads its methods and holds for the whole process; a runner asking for another
count while a runner with a different one is loaded is refused rather than resizing the pool under it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pocketbert.core.buckets import run_bucketed
from pocketbert.core.runner import Feed, Runner, as_float32
from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.tasks import Task, output_specs

METADATA_METHOD = "pocketbert_metadata"
METADATA_BYTES_METHOD = "pocketbert_metadata_utf8"
DYNAMIC_KEY = "dynamic"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _runtime() -> Any:
    """The ExecuTorch runtime singleton, with the quantized kernels (``embedding_byte``) registered."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bindings warn that their API is experimental
            import executorch.kernels.quantized  # noqa: F401 - registers quantized_decomposed kernels
            from executorch.runtime import Runtime
    except ImportError:
        raise MissingDependencyError("executorch", "executorch") from None
    return Runtime.get()


def _threadpool() -> Any:
    from executorch.extension.pybindings import portable_lib

    return portable_lib


def thread_count() -> int:
    """Threads in ExecuTorch's process-wide threadpool (what XNNPACK runs with)."""
    _runtime()
    return int(_threadpool()._threadpool_get_thread_count())


def read_metadata(path: Path | str, *, as_bytes: bool = False) -> dict[str, Any]:
    """The metadata a ``.pte`` carries, read back through the runtime: the JSON returned by its
    ``pocketbert_metadata`` constant method as a string, or with ``as_bytes`` by ``pocketbert_metadata_utf8`` as a
    uint8 tensor of UTF-8 bytes (task, labels, output names, methods, buckets, precision, scheme, …).

    Raises:
        PocketbertError: the file does not load, or has no such method.
    """
    method = METADATA_BYTES_METHOD if as_bytes else METADATA_METHOD
    try:
        program = _runtime().load_program(Path(path))
    except Exception as exc:
        raise PocketbertError(f"ExecuTorch cannot load {path}: {_first_line(exc)}") from exc
    if method not in program.method_names:
        raise PocketbertError(f"{path} has no {method} method (has {', '.join(sorted(program.method_names))})")
    (value,) = program.load_method(method).execute([])
    text = bytes(value.numpy().tobytes()).decode("utf-8") if as_bytes else value
    return json.loads(text)


class ExecuTorchRunner(Runner):
    """Runs a pocketbert ``.pte`` in ``executorch.runtime``.

    ``methods`` is what :func:`~pocketbert.formats.executorch.lower.lower` returned under ``methods``: bucket
    (int or str) -> method name, e.g. ``{"32": "seq_32", "128": "seq_128"}``, or ``{"dynamic": "forward"}``.
    ``threads`` sets ExecuTorch's process-wide threadpool before the methods load (``None``: leave it, by default
    one thread per core). ``used_lengths`` records, per :meth:`infer` row, the sequence length it ran at: its
    bucket, or its own token count for a dynamic method.
    """

    runtime = "executorch"
    _live_threads: ClassVar[dict[int, int]] = {}  # id(runner) -> thread count, for every loaded runner

    def __init__(
        self,
        path: Path | str,
        *,
        task: Task | str,
        methods: Mapping[int | str, str],
        name: str = "executorch",
        threads: int | None = None,
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.task = Task(task)
        if not methods:
            raise PocketbertError(f"{name}: no methods given")
        self.dynamic = DYNAMIC_KEY in {str(k) for k in methods}
        if self.dynamic:
            self.method_names = {0: next(v for k, v in methods.items() if str(k) == DYNAMIC_KEY)}
            self.buckets: list[int] = []
        else:
            self.method_names = {int(k): v for k, v in sorted(methods.items(), key=lambda kv: int(kv[0]))}
            self.buckets = sorted(self.method_names)
        if threads is not None and threads < 1:
            raise PocketbertError(f"{name}: threads must be >= 1, got {threads}")
        self.threads = threads
        self.output_names = [spec.name for spec in output_specs(self.task)]
        self.program: Any = None
        self._methods: dict[int, Any] = {}
        self.max_sequence: int | None = None
        self.used_lengths: list[int] = []

    @property
    def used_buckets(self) -> list[int]:
        """:attr:`used_lengths` under the name the LiteRT runner uses."""
        return self.used_lengths

    def _apply_threads(self) -> None:
        pool = _threadpool()
        current = int(pool._threadpool_get_thread_count())
        wanted = self.threads or current
        others = {n for key, n in self._live_threads.items() if key != id(self)}
        if others and others != {wanted}:
            raise PocketbertError(
                f"{self.name}: ExecuTorch's threadpool is process-wide and runs {sorted(others)} thread(s) for a "
                f"loaded runner; close it before loading one with {wanted}"
            )
        if wanted != current:
            pool._unsafe_reset_threadpool(wanted)
        self._live_threads[id(self)] = wanted

    def load_impl(self) -> None:
        runtime = _runtime()
        self._apply_threads()
        try:
            self.program = runtime.load_program(self.path)
            available = self.program.method_names
            missing = [m for m in self.method_names.values() if m not in available]
            if missing:
                raise PocketbertError(
                    f"{self.path} lacks methods {', '.join(missing)} (has {', '.join(sorted(available))}); "
                    "re-run the export"
                )
            self._methods = self._load_methods()
        except PocketbertError:
            self._release()
            raise
        except Exception as exc:
            self._release()
            raise PocketbertError(f"ExecuTorch cannot load {self.path}: {_first_line(exc)}") from exc
        if self.dynamic:
            sizes = self.program.metadata(self.method_names[0]).input_tensor_meta(0).sizes()
            self.max_sequence = int(sizes[1])  # a bounded dynamic axis is planned at its upper bound

    def _load_methods(self) -> dict[int, Any]:
        """Load every method this runner runs from :attr:`program`: bucket (0 for the dynamic method) -> method."""
        return {key: self.program.load_method(m) for key, m in self.method_names.items()}

    def _call(self, key: int, inputs: list[Any]) -> list[Any]:
        """Run the method of ``key`` on int64 tensors ``[input_ids, attention_mask]`` ``(1, S)``; its outputs."""
        return self._methods[key].execute(inputs)

    def _execute(self, key: int, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        inputs = [
            torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)),
        ]
        try:
            outputs = self._call(key, inputs)
        except PocketbertError:
            raise
        except Exception as exc:
            raise PocketbertError(
                f"{self.name}: {self.method_names[key]} failed on shape {tuple(input_ids.shape)}: {_first_line(exc)}"
            ) from exc
        if len(outputs) != len(self.output_names):
            raise PocketbertError(
                f"{self.name}: {self.method_names[key]} returned {len(outputs)} outputs, the task has "
                f"{len(self.output_names)} ({', '.join(self.output_names)})"
            )
        return as_float32({name: out.numpy() for name, out in zip(self.output_names, outputs)})

    def _run_bucket(self, bucket: int, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        self.used_lengths.append(bucket)
        return self._execute(bucket, input_ids, attention_mask)

    def _run_dynamic(self, feed: Feed) -> dict[str, np.ndarray]:
        ids, mask = np.asarray(feed["input_ids"]), np.asarray(feed["attention_mask"])
        batch, seq = ids.shape
        per_token = {spec.name: spec.per_token for spec in output_specs(self.task)}
        rows: dict[str, list[np.ndarray]] = {}
        for b in range(batch):
            n = max(int(mask[b].sum()), 1)
            if self.max_sequence is not None and n > self.max_sequence:
                raise PocketbertError(
                    f"input of {n} tokens is longer than the method's maximum {self.max_sequence}; truncate it"
                )
            self.used_lengths.append(n)
            row_ids = np.zeros((1, n), dtype=np.int64)
            row_ids[0] = ids[b, :n]
            out = self._execute(0, row_ids, np.ones((1, n), dtype=np.int64))
            for name, value in out.items():
                value = value[0]
                # an output beyond the task's (a layer probe) is per token when its first axis is the length
                if per_token.get(name, value.ndim >= 1 and value.shape[0] == n):
                    padded = np.zeros((seq, *value.shape[1:]), dtype=np.float32)
                    padded[:n] = value
                    value = padded
                rows.setdefault(name, []).append(value)
        return {name: np.stack(values) for name, values in rows.items()}

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        if self.dynamic:
            return self._run_dynamic(feed)
        return run_bucketed(feed, self.buckets, self.task, self._run_bucket)

    def _release(self) -> None:
        self._methods = {}
        self.program = None
        self._live_threads.pop(id(self), None)

    def close_impl(self) -> None:
        self._release()


class ExecuTorchProbeRunner(ExecuTorchRunner):
    """:class:`ExecuTorchRunner` whose outputs also hold every layer norm's output as ``probe_<i>`` (execution
    order), for ``pocketbert diagnose`` (:mod:`pocketbert.parity.localize`).

    The values are the artifact's own: each row runs the unchanged ``.pte`` in ``executorch.runtime`` under the
    runtime's event tracer with a debug buffer, and the layer norms' outputs are read back from the ETDump
    (:mod:`pocketbert.formats.executorch.probes` says why this and not a probed copy). Every row loads the program
    afresh (the tracer records one ETDump per load), so this runner is slower than :class:`ExecuTorchRunner`; the
    task's outputs are those of the same run. ``scratch`` is a directory for the ETDump and debug-buffer files of
    the row in flight. A probe is ``(B, S, H)`` float32, zero past each row's real tokens, like a per-token output.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        task: Task | str,
        methods: Mapping[int | str, str],
        scratch: Path | str,
        name: str = "executorch",
        threads: int | None = None,
    ) -> None:
        super().__init__(path, task=task, methods=methods, name=name, threads=threads)
        self.scratch = Path(scratch)
        self._probes: dict[str, Any] = {}
        self._last: list[np.ndarray] = []

    def _load_methods(self) -> dict[int, Any]:
        from pocketbert.formats.executorch.probes import read_program_probes

        self._probes = read_program_probes(self.path, list(self.method_names.values()))
        self.scratch.mkdir(parents=True, exist_ok=True)
        return {}  # every row loads its own traced program (see _call)

    def _call(self, key: int, inputs: list[Any]) -> list[Any]:
        from pocketbert.formats.executorch.probes import layer_norm_outputs

        method = self.method_names[key]
        probes = self._probes[method]
        etdump, debug = self.scratch / "run.etdp", self.scratch / "run.debug"
        program = _threadpool()._load_program(str(self.path), enable_etdump=True, debug_buffer_size=probes.buffer_bytes)
        if not program.has_etdump():
            raise PocketbertError(
                f"{self.name}: this ExecuTorch build has no event tracer (ETDump), which layer probes need"
            )
        outputs = program.load_method(method).call(inputs)
        program.write_etdump_result_to_file(str(etdump), str(debug))
        del program
        try:
            self._last = layer_norm_outputs(etdump, debug, probes)
        finally:
            etdump.unlink(missing_ok=True)
            debug.unlink(missing_ok=True)
        return outputs

    def _execute(self, key: int, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        out = super()._execute(key, input_ids, attention_mask)
        for i, value in enumerate(self._last):
            out[f"probe_{i}"] = value
        return out
