"""The learned refusal score (kb.answer.refusal_score): its arithmetic, and the calibrated weights'
directions, which must make sense whatever a refit on new signals gives."""

import math

import pytest

from kb.answer.refusal_score import CALIBRATED, FEATURES, RefusalScore

CONFIDENT = {
    "subject_coverage": 1.0,
    "coverage": 0.9,
    "p_not_found": 0.01,
    "constraints_missing": 0,
    "p_checked": 0.95,
}


def test_the_probability_is_a_logistic_of_the_weighted_signals():
    score = RefusalScore(
        weights={"p_checked": -4.0, "coverage": -1.0}, intercept=2.0, threshold=0.5
    )
    signals = {"p_checked": 0.25, "coverage": 0.5}
    assert score.probability(signals) == pytest.approx(1 / (1 + math.exp(-(2.0 - 1.0 - 0.5))))
    assert score.refuses(signals)
    assert not score.refuses({"p_checked": 1.0, "coverage": 0.5})


def test_missing_signals_read_as_reassuring():
    """A question naming no subject is not a subject left uncovered; a model server that gives
    no first-step probabilities never leaned towards "not found"."""
    named = {**CONFIDENT, "subject_coverage": None, "p_not_found": None}
    assert CALIBRATED.probability(named) == pytest.approx(
        CALIBRATED.probability({**CONFIDENT, "subject_coverage": 1.0, "p_not_found": 0.0})
    )


@pytest.mark.parametrize(
    ("signal", "worse"),
    [
        ("subject_coverage", 0.3),
        ("coverage", 0.4),
        ("p_not_found", 0.45),
        ("constraints_missing", 1),
        ("p_checked", 0.1),
    ],
)
def test_each_worse_signal_raises_the_calibrated_probability(signal, worse):
    assert CALIBRATED.probability({**CONFIDENT, signal: worse}) > CALIBRATED.probability(CONFIDENT)


def test_the_calibrated_score_reads_only_its_features():
    assert set(CALIBRATED.weights) == set(FEATURES)
    assert 0.5 <= CALIBRATED.threshold < 1.0


def test_signals_each_a_little_off_refuse_together_what_none_refuses_alone():
    partly_covered = {**CONFIDENT, "subject_coverage": 0.4, "coverage": 0.8}
    doubted = {**CONFIDENT, "coverage": 0.8, "p_checked": 0.1}
    assert not CALIBRATED.refuses(CONFIDENT)
    assert not CALIBRATED.refuses(partly_covered)
    assert not CALIBRATED.refuses(doubted)
    assert CALIBRATED.refuses({**partly_covered, "p_checked": 0.1})
