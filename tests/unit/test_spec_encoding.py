"""The stored form of a job's spec, pinned byte for byte: a stored job's ``spec_hash`` tells a
retried submission from a different one, so the encoding of an existing spec must never change
(whatever derives it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from accord.domain.jobs import codec
from accord.domain.jobs.model import JobSpec

FULL = JobSpec(name="train", gpus=4, time_limit_s=7200, command=("python", "train.py"), script=None,
               gpu_model="H100", project="clim", partner="uk", theme="climate",
               earliest_start=datetime(2026, 11, 22, 9, tzinfo=UTC),
               deadline=datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=1))),
               data_residency=("GB", "FR"), site="isambard", sector="academia")
SCRIPT = JobSpec(name="script", gpus=1, time_limit_s=3600, script="#!/bin/bash\necho hi\n")

FULL_JSON = (
    '{"name": "train", "gpus": 4, "time_limit_s": 7200, "command": ["python", "train.py"], '
    '"script": null, "gpu_model": "H100", "project": "clim", "partner": "uk", "theme": "climate", '
    '"earliest_start": "2026-11-22T09:00:00+00:00", "deadline": "2026-11-23T09:30:00+01:00", '
    '"data_residency": ["GB", "FR"], "site": "isambard", "sector": "academia"}')
SCRIPT_JSON = (
    '{"name": "script", "gpus": 1, "time_limit_s": 3600, "command": [], '
    '"script": "#!/bin/bash\\necho hi\\n", "gpu_model": null, "project": "default", "partner": null, '
    '"theme": null, "earliest_start": null, "deadline": null, "data_residency": [], "site": null}')


def test_a_full_spec_encodes_as_it_always_has() -> None:
    assert json.dumps(codec.encode_spec(FULL)) == FULL_JSON
    assert codec.spec_hash(FULL) == "2bc6c7c684004de91f0b0d0be3e6646aa2a2ae7078b9fe1cf4ad93b43b135e7d"


def test_a_spec_without_a_sector_leaves_it_out() -> None:
    assert json.dumps(codec.encode_spec(SCRIPT)) == SCRIPT_JSON
    assert codec.spec_hash(SCRIPT) == "bb93830ce320da072f5184319a1d76bacce1463449f31e1375f9d8cc2664588b"


def test_decoding_gives_back_the_spec() -> None:
    for spec in (FULL, SCRIPT):
        assert codec.decode_spec(json.loads(json.dumps(codec.encode_spec(spec)))) == spec


def test_a_stored_spec_without_the_sector_key_decodes() -> None:
    """Specs stored before the sector existed have no ``sector`` key."""
    assert codec.decode_spec(json.loads(SCRIPT_JSON)).sector is None
