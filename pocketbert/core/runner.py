"""The one ``Runner`` interface every runtime implements.

Like Polygraphy's runners: the base class owns the lifecycle and checks every feed, subclasses implement
``load_impl`` / ``infer_impl`` / ``close_impl``. A runner is a context manager that loads on enter; ``infer(feed)``
maps named input arrays to named output arrays (loading first when needed). Feeds hold ``input_ids`` /
``attention_mask`` integer arrays ``(B, S)``; outputs are float32 arrays named as in :mod:`pocketbert.tasks`.
The runner of an artifact comes from its format (:func:`pocketbert.formats.runner_for`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketbert.core.facts import HOST, process_facts
from pocketbert.errors import PocketbertError
from pocketbert.tasks import INPUT_NAMES

Feed = dict[str, np.ndarray]


class Runner:
    """A loaded model in some runtime that maps a feed to named outputs.

    ``timing_meaningful`` is False for runners whose speed says nothing about the deployed runtime (e.g. a NumPy
    reference interpreter standing in for Core ML on Linux): the latency harness lists them as not measurable.
    """

    timing_meaningful: bool = True
    runtime: str | None = None  # the runtime's distribution name, e.g. ``onnxruntime``
    kernel_family: str = HOST  # which kernels compute the outputs (see :mod:`pocketbert.kernels`)

    def __init__(self, name: str) -> None:
        self.name = name

    def kernel_facts(self) -> dict[str, Any]:
        """Which kernels made the outputs: family, native or emulated, ISA, CPU, features, runtime and version."""
        return {"family": self.kernel_family, "execution": "native", **process_facts(self.runtime)}

    loaded: bool = False

    def load(self) -> None:
        """Load the model (called on ``__enter__`` and by the first :meth:`infer`); a second call does nothing."""
        if not self.loaded:
            self.load_impl()
            self.loaded = True

    def load_impl(self) -> None:  # noqa: B027 - optional hook, some runners have nothing to load
        """Load the runtime and the model."""

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one batch: ``feed`` has ``input_ids`` and ``attention_mask`` ``(B, S)`` integer arrays of one shape
        (other keys are passed on); returns float32 outputs by name. A malformed feed is a one-line error."""
        check_feed(feed, self.name)
        self.load()
        return self.infer_impl(feed)

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one checked batch in the loaded runtime (every runtime's runner implements it)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement infer_impl")

    def close(self) -> None:
        """Release the runtime (called on ``__exit__``); the runner can be loaded again."""
        if self.loaded:
            self.close_impl()
            self.loaded = False

    def close_impl(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`load_impl` acquired."""

    def __enter__(self) -> Runner:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_feed(feed: Feed, name: str) -> None:
    """One-line error unless ``feed`` holds ``input_ids`` and ``attention_mask`` as integer arrays of one (B, S)
    shape with B, S >= 1."""
    missing = [key for key in INPUT_NAMES if key not in feed]
    if missing:
        raise PocketbertError(f"{name}: the feed lacks {', '.join(missing)} (has {', '.join(feed) or 'nothing'})")
    shapes = {key: np.shape(feed[key]) for key in INPUT_NAMES}
    ids = shapes["input_ids"]
    if len(ids) != 2 or min(ids) < 1 or shapes["attention_mask"] != ids:
        raise PocketbertError(f"{name}: input_ids and attention_mask must be one (batch, sequence) shape, got {shapes}")
    for key in INPUT_NAMES:
        if not np.issubdtype(np.asarray(feed[key]).dtype, np.integer):
            raise PocketbertError(f"{name}: {key} must be integer token data, got {np.asarray(feed[key]).dtype}")


def as_float32(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Outputs as float32 numpy arrays."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}
