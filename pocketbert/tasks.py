"""The tasks pocketbert exports, and the named outputs each one produces.

Shapes use B = batch, S = sequence length, H = hidden size, L = number of labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pocketbert.errors import PocketbertError


class Task(StrEnum):
    """A model head, named as in Hugging Face pipelines."""

    FEATURE_EXTRACTION = "feature-extraction"
    SEQUENCE_CLASSIFICATION = "sequence-classification"
    QUESTION_ANSWERING = "question-answering"
    TOKEN_CLASSIFICATION = "token-classification"

    @classmethod
    def parse(cls, name: str) -> Task:
        """Return the task called ``name`` or raise a one-line error listing the valid names."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(t.value for t in cls)
            raise PocketbertError(f"unknown task {name!r}; valid tasks: {valid}") from None


@dataclass(frozen=True)
class OutputSpec:
    """One named output of a deployed model.

    ``per_token`` outputs have a sequence axis (axis 1) whose padded positions carry no meaning and are excluded
    from parity metrics; the others are per sequence.
    """

    name: str
    per_token: bool
    shape: str  # symbolic, for docs and manifests, e.g. "B,S,H"


TASK_OUTPUTS: dict[Task, tuple[OutputSpec, ...]] = {
    Task.FEATURE_EXTRACTION: (
        OutputSpec("last_hidden_state", per_token=True, shape="B,S,H"),
        OutputSpec("embedding", per_token=False, shape="B,H"),
    ),
    Task.SEQUENCE_CLASSIFICATION: (OutputSpec("logits", per_token=False, shape="B,L"),),
    Task.QUESTION_ANSWERING: (
        OutputSpec("start_logits", per_token=True, shape="B,S"),
        OutputSpec("end_logits", per_token=True, shape="B,S"),
    ),
    Task.TOKEN_CLASSIFICATION: (OutputSpec("logits", per_token=True, shape="B,S,L"),),
}

INPUT_NAMES: tuple[str, str] = ("input_ids", "attention_mask")


def output_specs(task: Task) -> tuple[OutputSpec, ...]:
    """The outputs a deployed model of ``task`` returns, in order."""
    return TASK_OUTPUTS[task]


def task_from_architectures(architectures: list[str] | None) -> Task:
    """Infer the task from a checkpoint's ``config.architectures`` (feature extraction when nothing matches)."""
    for arch in architectures or ():
        if arch.endswith("ForSequenceClassification"):
            return Task.SEQUENCE_CLASSIFICATION
        if arch.endswith("ForQuestionAnswering"):
            return Task.QUESTION_ANSWERING
        if arch.endswith("ForTokenClassification"):
            return Task.TOKEN_CLASSIFICATION
    return Task.FEATURE_EXTRACTION
