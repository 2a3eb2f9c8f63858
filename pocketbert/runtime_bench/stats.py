"""Latency statistics: percentiles, spread, bootstrap confidence intervals of the median and of paired ratios.

Samples are seconds, shaped ``(R, K)``: ``R`` repeat rounds of ``K`` timed inferences each. Rounds are the unit
of resampling: every runner was timed once per round, interleaved with the others, so a ratio between two runners
is bootstrapped by drawing the *same* rounds for both (paired), which cancels noise that hit a whole round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20240517


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one runner at one sequence length; times in milliseconds, throughput per second.

    Attributes:
        median_ms, p90_ms, p99_ms: percentiles of every timed inference.
        iqr_ms: interquartile range (p75 - p25), the spread.
        ci_low_ms, ci_high_ms: bootstrap 95% confidence interval of the median (rounds resampled).
        sequences_per_s: ``batch / median``; ``tokens_per_s``: ``batch * seq / median`` (padding included).
        n: number of timed inferences.
    """

    median_ms: float
    p90_ms: float
    p99_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    sequences_per_s: float
    tokens_per_s: float
    n: int


@dataclass(frozen=True)
class Ratio:
    """``median(reference) / median(candidate)`` (> 1 means the candidate is faster) with a paired bootstrap CI."""

    value: float
    ci_low: float
    ci_high: float


def _rounds(samples: np.ndarray) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"samples must be a non-empty (rounds, iterations) array, got shape {arr.shape}")
    return arr


def _resampled_medians(samples: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Median of each bootstrap draw: ``index`` is ``(B, R)`` round indices into ``samples`` ``(R, K)``."""
    drawn = samples[index]  # (B, R, K)
    return np.median(drawn.reshape(index.shape[0], -1), axis=1)  # (B,)


def _draws(rounds: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, rounds, size=(BOOTSTRAP_RESAMPLES, rounds))


def _interval(values: np.ndarray) -> tuple[float, float]:
    alpha = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(samples: np.ndarray, batch: int, seq: int, seed: int = SEED) -> LatencyStats:
    """Statistics of ``samples`` (seconds, ``(R, K)`` or ``(R,)``) for feeds of ``batch`` rows of ``seq`` tokens."""
    arr = _rounds(samples)
    flat = arr.ravel()
    p25, p50, p75, p90, p99 = np.percentile(flat, [25, 50, 75, 90, 99])
    rng = np.random.default_rng(seed)
    low, high = _interval(_resampled_medians(arr, _draws(arr.shape[0], rng)))
    return LatencyStats(
        median_ms=p50 * 1e3,
        p90_ms=p90 * 1e3,
        p99_ms=p99 * 1e3,
        iqr_ms=(p75 - p25) * 1e3,
        ci_low_ms=low * 1e3,
        ci_high_ms=high * 1e3,
        sequences_per_s=batch / p50,
        tokens_per_s=batch * seq / p50,
        n=int(flat.size),
    )


def paired_ratio(reference: np.ndarray, candidate: np.ndarray, seed: int = SEED) -> Ratio:
    """Speed-up of ``candidate`` over ``reference``: ``median(reference) / median(candidate)``.

    Both are ``(R, K)`` second arrays timed in the same ``R`` interleaved rounds; the CI resamples rounds jointly.
    """
    ref, cand = _rounds(reference), _rounds(candidate)
    if ref.shape[0] != cand.shape[0]:
        raise ValueError(f"paired ratio needs the same rounds, got {ref.shape[0]} and {cand.shape[0]}")
    value = float(np.median(ref) / np.median(cand))
    index = _draws(ref.shape[0], np.random.default_rng(seed))
    ratios = _resampled_medians(ref, index) / _resampled_medians(cand, index)
    low, high = _interval(ratios)
    return Ratio(value=value, ci_low=low, ci_high=high)
