"""The exporter interface and registry, and the context every exporter shares.

An exporter turns the deployment wrapper (:class:`pocketbert.wrapper.DeploymentModel`) into one artifact of its
format and precision. Formats are registered by module path so that a missing optional dependency only matters
when that format is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.export.artifact import Artifact, ExportSettings, TensorInfo
from pocketbert.loading import LoadedModel
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import INPUT_NAMES, output_specs

# format name -> module defining ``EXPORTER``
EXPORTER_MODULES: dict[str, str] = {
    "onnx": "pocketbert.export.onnx_export",
    "tflite": "pocketbert.export.tflite_export",
    "coreml": "pocketbert.export.coreml_export",
}


@dataclass
class ExportContext:
    """Everything an exporter needs: the loaded model, the settings, and a scratch directory for intermediates.

    ``cache`` lets one precision reuse another's intermediate (e.g. ONNX int8 starts from the fp32 graph).
    """

    loaded: LoadedModel
    settings: ExportSettings
    scratch: Path
    cache: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] | None = None  # stage lines for the user (long budget searches)

    def wrapper(self) -> Any:
        """The deployment wrapper of the loaded model (built once)."""
        if "wrapper" not in self.cache:
            from pocketbert.wrapper import DeploymentModel

            self.cache["wrapper"] = DeploymentModel(self.loaded.model, self.loaded.task)
        return self.cache["wrapper"]

    def sample_inputs(self, batch: int, seq: int, dtype: Any = None) -> tuple[Any, Any]:
        """Sample texts padded to ``seq`` tokens: ``(input_ids, attention_mask)``, each ``(batch, seq)``."""
        import torch

        from pocketbert.parity.data import BUILTIN_TEXTS

        texts = [BUILTIN_TEXTS[i % len(BUILTIN_TEXTS)] for i in range(batch)]
        enc = self.loaded.tokenizer(texts, padding="max_length", truncation=True, max_length=seq, return_tensors="pt")
        dtype = dtype or torch.int64
        return enc["input_ids"].to(dtype), enc["attention_mask"].to(dtype)

    def calibration_texts(self) -> list[str]:
        """Calibration texts (static int8, budgets): the user's file when set, else the built-in calibration set."""
        from pocketbert.parity.data import read_text_file
        from pocketbert.quantize.calibration import CALIBRATION_TEXTS

        if self.settings.calibration_file:
            return read_text_file(Path(self.settings.calibration_file), what="calibration file")
        return list(CALIBRATION_TEXTS)

    def calibration_feeds(self) -> list[dict[str, Any]]:
        """Calibration inputs, one text each: ``input_ids`` / ``attention_mask`` int64 arrays of shape ``(1, n)``."""
        feeds = []
        for text in self.calibration_texts():
            enc = self.loaded.tokenizer(
                [text], truncation=True, max_length=self.settings.max_length, return_tensors="np"
            )
            feeds.append({name: enc[name].astype("int64") for name in INPUT_NAMES})
        return feeds

    def budget_feeds(self) -> list[dict[str, Any]]:
        """Feeds for a parity budget: the calibration texts alone *and* in padded batches of 4, like parity's feeds.

        Dynamic int8 quantizes activations with one scale per tensor, padding included, so a padded batch errs more
        than a lone text; a budget checked on lone texts alone would not hold on parity's batches.
        """
        from pocketbert.parity.data import build_feeds

        return build_feeds(self.loaded.tokenizer, self.calibration_texts(), self.settings.max_length)

    def budget_search(
        self,
        units: Callable[[list[tuple[str, tuple[int, ...]]]], list[Unit]],
        build: Callable[[list[str], Path], None],
        runner: Callable[[Path], Any],
        filename: str,
    ) -> MixedPrecisionResult:
        """The weight ops int8 keeps float under ``--budget``, each trial artifact run in its own runtime on the
        budget feeds against the PyTorch model (see :func:`pocketbert.quantize.mixed.search_trials`).

        ``units(modules)`` lists the format's weight ops, labelled from PyTorch's weights in call order.
        """
        from pocketbert.parity.torch_runner import WrapperRunner
        from pocketbert.quantize.mixed import search_trials, torch_weight_modules

        feeds = self.budget_feeds()
        with WrapperRunner(self.wrapper()) as reference_runner:
            reference = [reference_runner.infer(feed) for feed in feeds]
        found = units(torch_weight_modules(self.wrapper(), feeds[0]))
        budget, task = str(self.settings.int8_budget), self.loaded.task
        return search_trials(found, budget, task, feeds, reference, build, runner, filename, self.progress)

    def output_infos(self, shape_of: dict[str, list[Any]], dtype: str = "float32") -> list[TensorInfo]:
        """Output descriptions in task order; ``shape_of`` maps the symbolic letters (B, S, H, L) to sizes."""
        infos = []
        for spec in output_specs(self.loaded.task):
            shape = [shape_of.get(letter, letter) for letter in spec.shape.split(",")]
            infos.append(TensorInfo(spec.name, dtype, shape))
        return infos

    def dims(self) -> dict[str, Any]:
        """Known sizes of the symbolic output letters: H (hidden) and L (labels)."""
        dims: dict[str, Any] = {"H": self.loaded.hidden_size}
        if self.loaded.labels:
            dims["L"] = len(self.loaded.labels)
        return dims

    def input_infos(self, dtype: str, shape: list[Any]) -> list[TensorInfo]:
        """``input_ids`` and ``attention_mask`` descriptions of one dtype and shape."""
        return [TensorInfo(name, dtype, list(shape)) for name in INPUT_NAMES]


class Exporter(ABC):
    """Turns the deployment wrapper into an artifact of one format."""

    format: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()

    def check_available(self) -> None:
        """Raise :class:`MissingDependencyError` when a module this format needs is not installed."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(module, self.extra)

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise PocketbertError(
                f"{self.format} does not support precision {precision!r}; valid: {', '.join(self.precisions)}"
            )

    @abstractmethod
    def export(self, ctx: ExportContext, precision: str, out_dir: Path) -> Artifact:
        """Write the artifact below ``out_dir/<format>/<precision>/`` and describe it (paths relative to out_dir)."""


def get_exporter(fmt: str) -> Exporter:
    """The exporter of format ``fmt`` (``onnx``, ``tflite``, ``coreml``), or a one-line error."""
    if fmt not in EXPORTER_MODULES:
        raise PocketbertError(f"unknown format {fmt!r}; valid: {', '.join(EXPORTER_MODULES)}")
    try:
        module = importlib.import_module(EXPORTER_MODULES[fmt])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pocketbert"):
            raise PocketbertError(f"format {fmt!r} is not implemented in this version of pocketbert") from None
        raise
    return module.EXPORTER


def int8_scheme(precision: str, settings: ExportSettings) -> str:
    """The int8 scheme a precision asks for: ``int8-static`` / ``int8-dynamic`` explicitly, ``int8`` by setting."""
    if precision.startswith("int8-"):
        return precision.split("-", 1)[1]
    return settings.int8_scheme
