"""Inspect task ``arithmetic``: four sums, answered with a number; exact match scoring.

Shipped with Accord for campaign tests and demos: the dataset is inline, the scorer is
Inspect's own ``match``, nothing is downloaded.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate

VERSION = 1
SUMS = ((17, 25), (3, 4), (120, 80), (9, 9))


@task
def arithmetic() -> Task:
    """What is A + B? Answer with the number only."""
    samples = [Sample(id=f"sum-{a}-{b}", input=f"What is {a} + {b}? Answer with the number only.",
                      target=str(a + b)) for a, b in SUMS]
    return Task(dataset=samples, solver=generate(), scorer=match(numeric=True), version=VERSION)
