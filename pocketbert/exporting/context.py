"""The context every format's exporter shares during one export: the loaded model, the settings, a scratch
directory, the float models already converted, and the parity budget's search against PyTorch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import ExportSettings, TensorInfo
from pocketbert.loading import LoadedModel
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import INPUT_NAMES, output_specs


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

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``'s result, computed once per export under ``key`` (e.g. the float model of a format)."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

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
