"""How ONNX dynamic int8 stores its weights: the recipes, and the default chosen by measurement.

Dependency-free, so the command line and the export settings can name the recipes without importing ONNX Runtime.
Why each exists and what it costs: ``docs/kernels.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightRecipe:
    """How dynamic int8 stores the weights that ORT's integer matmuls multiply with uint8 activations.

    ``weight_type`` is ORT's ``QuantType`` name; ``reduce_range`` keeps int8 weights in 7 bits ([-64, 63]);
    ``why`` is recorded in the manifest beside the recipe's name.
    """

    name: str
    weight_type: str
    reduce_range: bool
    description: str
    why: str


WEIGHT_RECIPES: dict[str, WeightRecipe] = {
    r.name: r
    for r in (
        WeightRecipe(
            "s8",
            "QInt8",
            False,
            "int8 weights, full 8-bit range",
            "int8 weights (asked for): fastest on x86 with VNNI; on x86 without VNNI ORT's u8 x s8 kernel saturates "
            "and the artifact computes other numbers there (check with 'pocketbert parity --kernels x86-avx2')",
        ),
        WeightRecipe(
            "s7",
            "QInt8",
            True,
            "int8 weights in a 7-bit range (reduce_range)",
            "7-bit int8 weights (asked for, ORT's reduce_range): exact on every CPU, one bit less weight precision",
        ),
        WeightRecipe(
            "u8",
            "QUInt8",
            False,
            "uint8 weights with a zero point per channel",
            "uint8 weights: ONNX Runtime's u8 x u8 kernels sum exact int32 products on every CPU (x86 AVX2, x86 VNNI "
            "and aarch64 alike), while int8 weights saturate in int16 on x86 without VNNI; on aarch64 both run the "
            "same dot-product kernel; measured on all-MiniLM-L6-v2 it is also the most faithful (docs/kernels.md)",
        ),
    )
}
DEFAULT_WEIGHT_RECIPE = "u8"
