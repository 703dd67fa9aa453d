"""Drift statistics and the policy, on generated windows and hand-built reports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tagifai.config import TrainParams
from tagifai.data import LabelEncoder, model_texts, prepare, split
from tagifai.decision import CONTINUE, IMPROVE, INSPECT, ROLLBACK, LiveF1, align_labels, decide, live_f1
from tagifai.drift import (
    CONFIDENCE,
    LABEL,
    RARE,
    TEXT_LENGTH,
    DriftPolicy,
    DriftReport,
    DriftTest,
    confidence_drift,
    drift_report,
    label_drift,
    max_probability,
    text_length_drift,
    word_counts,
)
from tagifai.sample import generate_sample
from tagifai.train import train

POLICY = DriftPolicy()


@pytest.fixture(scope="module")
def windows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two windows of the same generator: 1200 reference rows, 600 new."""
    projects, tags = generate_sample(1800, seed=11)
    df = projects.merge(tags, on="id")
    return df.iloc[:1200].reset_index(drop=True), df.iloc[1200:].reset_index(drop=True)


# --------------------------------------------------------------------------- policy


def test_policy_from_json_casts_and_rejects_unknown_keys() -> None:
    p = DriftPolicy.from_json('{"min_window": "80", "f1_drop_tolerance": 0.1}')
    assert (p.min_window, p.f1_drop_tolerance, p.alpha_label) == (80, 0.1, 0.01)
    assert DriftPolicy.from_json("") == DriftPolicy.from_json("{}") == DriftPolicy()
    with pytest.raises(ValueError, match=r"unknown drift policy key\(s\) \['alpha'\]; known: \["):
        DriftPolicy.from_json('{"alpha": 0.05}')
    with pytest.raises(ValueError, match=r"alpha_label must be between 0 and 1, got 1\.5"):
        DriftPolicy.from_dict({"alpha_label": 1.5})
    with pytest.raises(ValueError, match="not valid JSON"):
        DriftPolicy.from_json("{min_window: 3}")
    with pytest.raises(ValueError, match="must be a JSON object"):
        DriftPolicy.from_json("[1]")
    with pytest.raises(ValueError, match="bad drift policy value"):
        DriftPolicy.from_dict({"min_window": "many"})


# --------------------------------------------------------------------------- tests


def test_text_length_same_generator_does_not_fire(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, new = windows
    t = text_length_drift(ref, new, POLICY)
    assert (t.name, t.ran, t.fired, t.n_reference, t.n_new) == (TEXT_LENGTH, True, False, 1200, 600)
    assert t.p_value > 0.01 and t.effect < 0.1
    assert t.details["reference_mean"] == pytest.approx(word_counts(ref).mean())


def test_text_length_fires_when_descriptions_get_short(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, new = windows
    terse = new.assign(description=new["description"].str.split(".").str[0])  # first sentence only
    t = text_length_drift(ref, terse, POLICY)
    assert t.fired and t.p_value < 1e-10 and t.effect > 0.3
    assert t.details["new_median"] < t.details["reference_median"]
    assert "text_length: FIRED (statistic" in t.describe()


def test_text_length_skipped_on_a_small_window(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, new = windows
    t = text_length_drift(ref, new.head(49), POLICY)
    assert not t.fired and t.skipped == "1200 reference / 49 new values; need 50 / 50"
    assert math.isnan(t.p_value)
    assert t.describe() == "text_length: skipped (1200 reference / 49 new values; need 50 / 50)"


def test_label_drift_same_generator_does_not_fire(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, new = windows
    t = label_drift(ref["tag"], new["tag"], POLICY)
    assert t.ran and not t.fired and t.p_value > 0.01
    assert set(t.details["counts"]) == set(ref["tag"]) and t.details["pooled"] == []


def test_label_drift_fires_on_a_shift_over_the_union_of_classes(
    windows: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    ref, new = windows
    # Mostly mlops, and a class the reference never had.
    tags = pd.concat([new.loc[new["tag"] == "mlops", "tag"], new.loc[new["tag"] != "mlops", "tag"].head(40)])
    tags = pd.concat([tags, pd.Series(["llm-agents"] * 30)], ignore_index=True)
    t = label_drift(ref["tag"], tags, POLICY)
    assert t.fired and t.p_value < 1e-20 and t.effect > 0.3
    assert t.details["counts"]["llm-agents"] == {"reference": 0, "new": 30}
    assert t.details["counts"]["mlops"]["new"] == int((new["tag"] == "mlops").sum())


def test_label_drift_pools_rare_classes_and_skips_small_windows() -> None:
    ref = pd.Series(["a"] * 300 + ["b"] * 300 + ["c"] * 3 + ["d"] * 2)
    new = pd.Series(["a"] * 50 + ["b"] * 48 + ["d"] * 2)
    t = label_drift(ref, new, POLICY)
    # c and d expect < 5 rows in the 100-row window: pooled, and the pool is too small too.
    assert t.ran and t.details["pooled"] == ["c", "d"] and not t.fired
    assert t.statistic == pytest.approx(0.0, abs=0.05)
    big_rare = pd.Series(["a"] * 300 + ["b"] * 300 + ["c"] * 20 + ["d"] * 20)
    t2 = label_drift(big_rare, pd.Series(["a"] * 45 + ["b"] * 45 + ["c"] * 5 + ["d"] * 5), POLICY)
    assert t2.details["pooled"] == ["c", "d"] and t2.ran  # pooled column kept: 40 rows expect >= 5
    assert (t.details["columns"], t2.details["columns"]) == (["a", "b"], ["a", "b", RARE])
    skipped = label_drift(ref, new.head(49), POLICY)
    assert skipped.skipped == "605 reference / 49 new labeled rows; need 50"
    one = label_drift(pd.Series(["a"] * 100), pd.Series(["a"] * 60), POLICY)
    assert one.skipped == "fewer than two classes with enough expected rows"
    with_nan = label_drift(ref, pd.Series(["a"] * 60 + [None] * 40), POLICY)
    assert with_nan.n_new == 60  # unlabeled rows do not count


def test_confidence_drift_and_report() -> None:
    rng = np.random.default_rng(0)
    same = confidence_drift(rng.beta(8, 2, 400), rng.beta(8, 2, 300), POLICY)
    lower = confidence_drift(rng.beta(8, 2, 400), rng.beta(4, 3, 300), POLICY)
    assert (same.name, same.fired, lower.fired) == (CONFIDENCE, False, True)
    assert lower.details["new_mean"] < lower.details["reference_mean"]


# --------------------------------------------------------------------------- model features


@pytest.fixture(scope="module")
def model(windows: tuple[pd.DataFrame, pd.DataFrame]) -> object:
    ref, _ = windows
    df = prepare(ref)
    tr, va, _ = split(df)
    return train(
        tr, va, TrainParams(analyzer="word", ngram_max_range=2, num_epochs=5), LabelEncoder.fit(df["tag"])
    )


def test_align_labels_maps_onto_the_model_classes() -> None:
    tags = pd.Series(["mlops", "time-series", "computer-vision", "llm"])
    assert align_labels(tags, ["computer-vision", "mlops", "other"]).tolist() == [
        "mlops",
        "other",
        "computer-vision",
        "other",
    ]
    no_other = align_labels(tags, ["computer-vision", "mlops"])
    assert no_other.tolist()[:1] == ["mlops"] and no_other.isna().tolist() == [False, True, False, True]


def test_live_f1_and_confidence_on_a_real_model(
    windows: tuple[pd.DataFrame, pd.DataFrame], model: object
) -> None:
    ref, new = windows
    f1, rows = live_f1(model, new)
    assert rows == len(new) and 0.85 < f1 <= 1.0
    # A small window: prepare would have mapped rare classes to `other`; aligned to the model
    # they keep their classes and the score stays comparable.
    f1_small, rows_small = live_f1(model, new.head(60))
    assert rows_small == 60 and f1_small > 0.8
    swapped = new.assign(
        tag=new["tag"].replace(
            {
                "natural-language-processing": "computer-vision",
                "computer-vision": "natural-language-processing",
            }
        )
    )
    assert live_f1(model, swapped)[0] < 0.35
    assert live_f1(model, new.assign(tag=None)) == (pytest.approx(float("nan"), nan_ok=True), 0)
    conf = max_probability(model, model_texts(new))
    assert conf.shape == (600,) and ((conf > 0) & (conf <= 1)).all()
    held = prepare(ref)
    report = drift_report(ref, new, POLICY, max_probability(model, list(split(held)[2]["text"])), conf)
    assert report.fired == [] and report.n_new_labeled == 600
    assert drift_report(ref, new, POLICY).confidence.skipped == "no held-out reference confidences"
    assert report.to_dict()["confidence"]["fired"] is False


# --------------------------------------------------------------------------- decide


def _test(name: str, fired: bool = False, skipped: str = "") -> DriftTest:
    if skipped:
        return DriftTest(name, math.nan, math.nan, 0.01, math.nan, 0.1, False, 1000, 10, skipped)
    return DriftTest(
        name,
        0.3 if fired else 0.02,
        1e-6 if fired else 0.4,
        0.01,
        0.3 if fired else 0.02,
        0.1,
        fired,
        1000,
        300,
    )


def _report(*fired: str, n_new: int = 300, labeled: int = 300) -> DriftReport:
    return DriftReport(
        _test(TEXT_LENGTH, TEXT_LENGTH in fired),
        _test(LABEL, LABEL in fired),
        _test(CONFIDENCE, CONFIDENCE in fired),
        n_reference=1000,
        n_new=n_new,
        n_new_labeled=labeled,
    )


GOOD = LiveF1("1", 0.84, 0.86, 300)  # within tolerance
BAD = LiveF1("2", 0.40, 0.85, 300)  # dropped 0.45


@pytest.mark.parametrize(
    ("report", "champion", "previous", "decision", "first_reason"),
    [
        (_report(LABEL, n_new=20, labeled=20), BAD, GOOD, CONTINUE, "20 new rows since"),
        (_report(), GOOD, None, CONTINUE, "no drift test fired"),
        (
            _report(),
            BAD,
            GOOD,
            ROLLBACK,
            "champion v2 live F1 0.4000 on 300 new labeled rows (at training 0.8500",
        ),
        (_report(LABEL), BAD, GOOD, ROLLBACK, "champion v2 live F1"),  # roll back first, improve next
        (_report(), BAD, LiveF1("1", 0.41, 0.86, 300), IMPROVE, "champion v2"),  # previous degraded too
        (_report(), BAD, LiveF1("1", 0.41, 0.42, 300), IMPROVE, "champion v2"),  # not 0.02 better
        (_report(), BAD, None, IMPROVE, "champion v2"),  # nothing to go back to
        (_report(LABEL), GOOD, None, IMPROVE, "label: FIRED"),
        (_report(CONFIDENCE), GOOD, None, IMPROVE, "confidence: FIRED"),  # with 300 labels
        (_report(CONFIDENCE, labeled=10), None, None, INSPECT, "confidence: FIRED"),  # no labels
        (_report(TEXT_LENGTH), GOOD, None, INSPECT, "text_length: FIRED"),
        (_report(TEXT_LENGTH, labeled=0), None, None, INSPECT, "text_length: FIRED"),
        (_report(labeled=10), BAD, GOOD, CONTINUE, "no drift test fired"),  # too few labels to judge F1
    ],
)
def test_decide(
    report: DriftReport, champion: LiveF1 | None, previous: LiveF1 | None, decision: str, first_reason: str
) -> None:
    got, reasons = decide(report, champion, previous, POLICY)
    assert got == decision, reasons
    assert reasons[0].startswith(first_reason), reasons


def test_decide_reasons_carry_the_numbers() -> None:
    _, reasons = decide(_report(), BAD, None, POLICY)
    assert reasons == [
        "champion v2 live F1 0.4000 on 300 new labeled rows (at training 0.8500, drop +0.4500): more than the "
        "tolerance 0.05 below; no previous version to roll back to"
    ]
    _, inspect = decide(_report(TEXT_LENGTH, labeled=0), None, None, POLICY)
    assert (
        inspect[-1]
        == "only 0 new labeled rows (< min_labels 50): a person should look before anything changes"
    )
    _, keep = decide(_report(), GOOD, None, POLICY)
    assert keep[1] == (
        "champion v1 live F1 0.8400 on 300 new labeled rows (at training 0.8600, drop +0.0200): within tolerance 0.05"
    )
    # A looser tolerance turns the rollback case into continue.
    assert decide(_report(), BAD, GOOD, DriftPolicy(f1_drop_tolerance=0.5))[0] == CONTINUE
