"""Drift statistics: a reference window against a new window. Pure functions: no kfp, no env reads.

Three tests compare a *reference* (the rows the champion was trained on) with a *new
window* (the rows added since):

- text length: two-sample Kolmogorov-Smirnov on the word counts of title + description;
- label: chi-square on the tag counts over the union of both windows' classes, with
  rare classes pooled so that no expected count is below ``min_expected``;
- confidence: Kolmogorov-Smirnov on the champion's winning-class probability, on held-out
  reference rows (never trained on) vs. the new window.

A test *fires* when its p-value is below its threshold AND its effect size (the KS
statistic D, or Cramér's V for the chi-square) reaches ``min_effect``: with thousands of
rows a p-value alone flags differences too small to matter. :class:`DriftPolicy` holds
these thresholds and those of the decision (:mod:`tagifai.decision`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import raw_texts

RARE = "(rare classes)"  # the pooled column of the chi-square table

TEXT_LENGTH, LABEL, CONFIDENCE = "text_length", "label", "confidence"


@dataclass(frozen=True)
class DriftPolicy:
    """The thresholds of the continual-learning loop (see docs/continual.md).

    Attributes:
        alpha_text_length: p-value below which text-length drift can fire.
        alpha_label: p-value below which label drift can fire.
        alpha_confidence: p-value below which confidence drift can fire.
        min_effect: Smallest effect size that counts (KS D; Cramér's V for labels).
        min_window: New rows needed before any test runs; fewer means `continue`.
        min_labels: Newly labeled rows needed for label drift, live F1 and acting on it.
        min_expected: Chi-square guard: classes whose expected count is below this are
            pooled into one column (and that column dropped if still too small).
        f1_drop_tolerance: A version *degrades* when its live F1 on new labels is more
            than this below its F1 at training time (its registered ``test_f1``).
        rollback_margin: The previous version's live F1 must beat the champion's by at
            least this much to roll back to it.
    """

    alpha_text_length: float = 0.01
    alpha_label: float = 0.01
    alpha_confidence: float = 0.01
    min_effect: float = 0.1
    min_window: int = 50
    min_labels: int = 50
    min_expected: float = 5.0
    f1_drop_tolerance: float = 0.05
    rollback_margin: float = 0.02

    def __post_init__(self) -> None:
        for name in ("alpha_text_length", "alpha_label", "alpha_confidence"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("min_effect", "min_expected", "f1_drop_tolerance", "rollback_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.min_window < 2 or self.min_labels < 2:
            raise ValueError("min_window and min_labels must be at least 2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftPolicy:
        """Defaults updated with `data`; unknown keys fail, values are cast to the field types."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown drift policy key(s) {unknown}; known: {sorted(known)}")
        casts = {"int": int, "float": float}
        try:
            values = {k: casts[str(known[k].type)](v) for k, v in data.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad drift policy value: {exc}") from None
        return replace(cls(), **values)

    @classmethod
    def from_json(cls, text: str) -> DriftPolicy:
        try:
            data = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"drift policy is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("drift policy must be a JSON object")
        return cls.from_dict(data)


@dataclass(frozen=True)
class DriftTest:
    """One drift test: statistic, p-value, effect size, thresholds and whether it fired."""

    name: str
    statistic: float  # KS D or chi-square
    p_value: float
    threshold: float  # the p-value threshold (alpha)
    effect: float  # KS D or Cramér's V
    min_effect: float
    fired: bool
    n_reference: int
    n_new: int
    skipped: str = ""  # why the test did not run ("" when it ran)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return not self.skipped

    def describe(self) -> str:
        if self.skipped:
            return f"{self.name}: skipped ({self.skipped})"
        verdict = "FIRED" if self.fired else "ok"
        return (
            f"{self.name}: {verdict} (statistic {self.statistic:.4g}, p {self.p_value:.3g} vs {self.threshold:g}, "
            f"effect {self.effect:.3f} vs {self.min_effect:g}; n {self.n_reference} ref / {self.n_new} new)"
        )


def _skipped(
    name: str, reason: str, threshold: float, min_effect: float, n_ref: int, n_new: int
) -> DriftTest:
    return DriftTest(name, math.nan, math.nan, threshold, math.nan, min_effect, False, n_ref, n_new, reason)


@dataclass(frozen=True)
class DriftReport:
    """The three tests and the window sizes they ran on."""

    text_length: DriftTest
    label: DriftTest
    confidence: DriftTest
    n_reference: int
    n_new: int
    n_new_labeled: int

    @property
    def tests(self) -> tuple[DriftTest, ...]:
        return (self.text_length, self.label, self.confidence)

    @property
    def fired(self) -> list[str]:
        return [t.name for t in self.tests if t.fired]

    def to_dict(self) -> dict[str, Any]:
        return finite(asdict(self))


def finite(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python: a JSON- and metadata-safe copy."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def word_counts(df: pd.DataFrame) -> np.ndarray:
    """Words in title + description, before any cleaning (what a reader would count)."""
    return np.array([len(t.split()) for t in raw_texts(df)], dtype=float)


def max_probability(model: Any, texts: Sequence[str]) -> np.ndarray:
    """The winning-class probability of a TagModel on cleaned texts."""
    if not len(texts):
        return np.zeros(0)
    return np.asarray(model.predict_proba(list(texts))).max(axis=1)


def ks_test(
    name: str,
    reference: Iterable[float],
    new: Iterable[float],
    alpha: float,
    min_effect: float,
    min_reference: int,
    min_new: int,
) -> DriftTest:
    """Two-sample KS test (scipy.stats.ks_2samp); skipped when either sample is too small."""
    from scipy import stats

    ref = np.asarray(list(reference), dtype=float)
    cur = np.asarray(list(new), dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) < min_reference or len(cur) < min_new:
        reason = f"{len(ref)} reference / {len(cur)} new values; need {min_reference} / {min_new}"
        return _skipped(name, reason, alpha, min_effect, len(ref), len(cur))
    res = stats.ks_2samp(ref, cur)
    d, p = float(res.statistic), float(res.pvalue)
    details = {
        "reference_mean": float(ref.mean()),
        "new_mean": float(cur.mean()),
        "reference_median": float(np.median(ref)),
        "new_median": float(np.median(cur)),
    }
    return DriftTest(
        name, d, p, alpha, d, min_effect, p < alpha and d >= min_effect, len(ref), len(cur), "", details
    )


def text_length_drift(reference: pd.DataFrame, new: pd.DataFrame, policy: DriftPolicy) -> DriftTest:
    """KS on the word counts of title + description."""
    return ks_test(
        TEXT_LENGTH,
        word_counts(reference),
        word_counts(new),
        policy.alpha_text_length,
        policy.min_effect,
        policy.min_window,
        policy.min_window,
    )


def confidence_drift(
    reference_conf: Iterable[float], new_conf: Iterable[float], policy: DriftPolicy
) -> DriftTest:
    """KS on the champion's winning-class probability: held-out reference rows vs. new rows."""
    return ks_test(
        CONFIDENCE,
        reference_conf,
        new_conf,
        policy.alpha_confidence,
        policy.min_effect,
        policy.min_window,
        policy.min_window,
    )


def label_drift(reference_tags: pd.Series, new_tags: pd.Series, policy: DriftPolicy) -> DriftTest:
    """Chi-square on tag counts (reference vs. new) over the union of classes.

    Small-count guard: classes whose smallest expected count is below
    ``policy.min_expected`` are pooled into one column; if that pooled column is still
    too small it is dropped. Fewer than two columns left, or fewer than
    ``policy.min_labels`` labeled new rows: the test is skipped.
    """
    from scipy import stats

    ref = reference_tags.dropna().astype(str)
    cur = new_tags.dropna().astype(str)
    alpha, eff = policy.alpha_label, policy.min_effect
    if len(cur) < policy.min_labels or len(ref) < policy.min_labels:
        reason = f"{len(ref)} reference / {len(cur)} new labeled rows; need {policy.min_labels}"
        return _skipped(LABEL, reason, alpha, eff, len(ref), len(cur))
    classes = sorted(set(ref) | set(cur))
    ref_counts, new_counts = ref.value_counts().to_dict(), cur.value_counts().to_dict()
    table = pd.DataFrame(
        {
            "reference": [ref_counts.get(c, 0) for c in classes],
            "new": [new_counts.get(c, 0) for c in classes],
        },
        index=classes,
        dtype=float,
    )
    counts = {c: {"reference": int(ref_counts.get(c, 0)), "new": int(new_counts.get(c, 0))} for c in classes}
    n = float(table.to_numpy().sum())
    expected_min = table.sum(axis=1).to_numpy() * (min(len(ref), len(cur)) / n)
    rare = [c for c, e in zip(classes, expected_min, strict=True) if e < policy.min_expected]
    if rare:
        pooled = table.loc[rare].sum()
        table = table.drop(index=rare)
        if pooled.sum() * (min(len(ref), len(cur)) / n) >= policy.min_expected:
            table.loc[RARE] = pooled
    details: dict[str, Any] = {"counts": counts, "pooled": rare, "columns": [str(c) for c in table.index]}
    if len(table) < 2:
        reason = "fewer than two classes with enough expected rows"
        test = _skipped(LABEL, reason, alpha, eff, len(ref), len(cur))
        return replace(test, details=details)
    chi2, p, _, _ = stats.chi2_contingency(table.to_numpy().T, correction=False)
    total = float(table.to_numpy().sum())
    v = math.sqrt(float(chi2) / total) if total else 0.0  # Cramér's V of a 2 x k table
    fired = float(p) < alpha and v >= eff
    return DriftTest(LABEL, float(chi2), float(p), alpha, v, eff, fired, len(ref), len(cur), "", details)


def drift_report(
    reference: pd.DataFrame,
    new: pd.DataFrame,
    policy: DriftPolicy,
    reference_conf: Iterable[float] | None = None,
    new_conf: Iterable[float] | None = None,
    confidence_note: str = "",
) -> DriftReport:
    """All three tests. Without confidences (no champion, no held-out rows) that test is skipped."""
    labeled = new["tag"].notna() if "tag" in new else pd.Series(False, index=new.index)
    if reference_conf is None or new_conf is None:
        conf = _skipped(
            CONFIDENCE,
            confidence_note or "no held-out reference confidences",
            policy.alpha_confidence,
            policy.min_effect,
            len(reference),
            len(new),
        )
    else:
        conf = confidence_drift(reference_conf, new_conf, policy)
    return DriftReport(
        text_length=text_length_drift(reference, new, policy),
        label=label_drift(reference["tag"], new["tag"], policy),
        confidence=conf,
        n_reference=len(reference),
        n_new=len(new),
        n_new_labeled=int(labeled.sum()),
    )
