"""Inspect task ``capitals``: four capital cities; scored by whether the answer names it.

Shipped with Accord for campaign tests and demos: the dataset is inline, the scorer is
Inspect's own ``includes``, nothing is downloaded.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

VERSION = 2
CAPITALS = (("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Chile", "Santiago"))


@task
def capitals() -> Task:
    """What is the capital of X? Answer with the city only."""
    samples = [Sample(id=country.lower(), input=f"What is the capital of {country}? "
                      "Answer with the city only.", target=city) for country, city in CAPITALS]
    return Task(dataset=samples, solver=generate(), scorer=includes(), version=VERSION)
