"""Campaigns: the document's validation (every problem, naming its field), the results
policy and embargo rules, the job script, and the store's insert-once writes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.adapters.federation_file import parse_federation_text
from accord.adapters.sql.campaign_store import SqlCampaigns
from accord.adapters.sql.store import SqlStore
from accord.domain.access.rules import Affiliation, Grant, Principal, Role, ScopeKind
from accord.domain.campaigns.campaign import (
    Campaign,
    CollectedLog,
    EmbargoKind,
    Run,
    api_key_env,
    can_approve_release,
    can_read_results,
    can_see_campaign,
    embargo_lifted,
    encode_campaign,
    interval,
    job_script,
    parse_campaign,
    readable_pairs,
)
from accord.domain.errors import Conflict, InvalidInput
from accord.service.campaigns import TASKS_DIR, builtin_tasks, summarise
from tests.conftest import SMALL_FEDERATION

FED = parse_federation_text(SMALL_FEDERATION, "small.toml")
BUILTIN = {"arithmetic": "1", "capitals": "2"}
TODAY = date(2026, 11, 20)


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "joint-1", "name": "Joint", "project": "evals", "partners": ["uk", "fr"],
        "sites": ["bristol", "paris"],
        "tasks": [{"name": "arithmetic", "version": 1}, {"name": "capitals", "version": "2"}],
        "models": [{"name": "calc", "base_url": "http://127.0.0.1:9/v1/", "model": "calc"},
                   {"name": "big", "base_url": "https://models.example/v1", "model": "org/big-7b",
                    "partner": "fr"}],
    }
    base.update(over)
    return base


def campaign(**over: Any) -> Campaign:
    return parse_campaign(doc(**over), FED, BUILTIN)


def person(user: str, partner: str | None, *grants: Grant) -> Principal:
    affs = (Affiliation(f"inst-{partner}", partner),) if partner else ()
    return Principal(user, user, affs, grants)


def officer(partner: str) -> Principal:
    return person(f"po{partner}", None, Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, partner))


def problems(**over: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        campaign(**over)
    return {p.where: p.message for p in err.value.problems}


# ---------------------------------------------------------------------------- parsing
def test_a_valid_document_parses_with_defaults_and_round_trips() -> None:
    c = campaign()
    assert [(t.name, t.version) for t in c.tasks] == [("arithmetic", "1"), ("capitals", "2")]
    assert c.models[0].base_url == "http://127.0.0.1:9/v1"          # trailing slash dropped
    assert c.policy.embargo.kind is EmbargoKind.APPROVAL           # the default: all must approve
    assert [s.partner for s in c.policy.shares] == ["uk", "fr"]    # the default: everyone sees all
    assert (c.gpus, c.time_limit_s) == (1, 1800)
    assert parse_campaign(encode_campaign(c), FED, BUILTIN) == c
    assert [(t.name, m.name, c.site_for(i)) for i, (t, m) in enumerate(c.pairs())] == [
        ("arithmetic", "calc", "bristol"), ("arithmetic", "big", "paris"),
        ("capitals", "calc", "bristol"), ("capitals", "big", "paris")]


def test_every_problem_is_listed_naming_its_field() -> None:
    found = problems(id="Bad Id", partners=["uk", "xx"], sites=[], gpus=0, colour="red",
                     tasks=[{"name": "arithmetic", "version": 7}, {"name": "nope", "version": 1},
                            {"name": "x", "version": 1, "file": "relative.py"}, {"name": "bad-name",
                                                                                  "version": 1}],
                     models=[{"name": "m", "base_url": "ftp://x", "model": "m"},
                             {"name": "n", "base_url": "http://x/v1", "model": "bad model"},
                             {"name": "o", "base_url": "http://x/v1"}],
                     results={"embargo": "forever", "shares": [{"partner": "kr"}]})
    assert set(found) >= {"id", "partners[1]", "sites", "gpus", "colour", "tasks[0].version",
                          "tasks[1].name", "tasks[2].file", "tasks[3].name", "models[0].base_url",
                          "models[1].model", "models[2].model", "results.embargo",
                          "results.shares[0].partner"}
    assert "does not match the shipped task arithmetic" in found["tasks[0].version"]


def test_sites_are_those_of_the_partners_taking_part() -> None:
    assert problems(partners=["uk"], sites=["bristol", "paris"]) == {
        "sites[1]": "is a site of partner fr, which does not take part"}


def test_required_fields_and_duplicates() -> None:
    found = problems(tasks=[{"name": "arithmetic", "version": 1}] * 2, models=[], partners=["uk", "uk"])
    assert found["tasks"] == "names one entry twice"
    assert found["models"] == "must name at least one"
    assert found["partners"] == "names one entry twice"
    with pytest.raises(InvalidInput) as err:
        parse_campaign({}, FED, BUILTIN)
    bare = {p.where for p in err.value.problems}
    assert bare >= {"id", "project", "partners", "sites", "tasks", "models"}


def test_embargo_date_needs_a_date_and_shares_name_the_campaigns_tasks_and_models() -> None:
    assert problems(results={"embargo": "date"}) == {"results.until": "is required"}
    assert "results.until" in problems(results={"embargo": "none", "until": "2027-01-01"})
    found = problems(results={"shares": [{"partner": "uk", "tasks": ["chess"], "models": ["gpt"]}]})
    assert set(found) == {"results.shares[0].tasks[0]", "results.shares[0].models[0]"}
    c = campaign(results={"embargo": "date", "until": "2027-01-01"})
    assert c.policy.embargo.until == date(2027, 1, 1)


def test_nothing_but_checked_text_reaches_the_job_script() -> None:
    found = problems(tasks=[{"name": "arithmetic", "version": "1\nrm -rf /"}],
                     models=[{"name": "m", "base_url": "http://x/v1 $(id)", "model": "m"},
                             {"name": "n", "base_url": "http://x/v1", "model": "m;id"}])
    assert set(found) == {"tasks[0].version", "models[0].base_url", "models[1].model"}


def test_a_task_from_a_file_at_the_sites_is_taken_at_its_word() -> None:
    c = campaign(tasks=[{"name": "safety_probe", "version": "2026.11", "file": "/opt/evals/probe.py"}])
    assert c.tasks[0].file == "/opt/evals/probe.py"
    assert "tasks[0].file" in problems(tasks=[{"name": "t", "version": 1, "file": "/opt/../etc/x.py"}])


def test_the_shipped_tasks_declare_the_versions_campaigns_check() -> None:
    assert builtin_tasks() == BUILTIN
    for name, version in BUILTIN.items():
        text = (TASKS_DIR / f"{name}.py").read_text()
        assert "version=VERSION" in text and re.search(rf"^VERSION = {version}$", text, re.M)


# ---------------------------------------------------------------------------- policy
def test_the_embargo_by_approval_lifts_only_when_every_partner_approved() -> None:
    c = campaign()
    assert not embargo_lifted(c, frozenset(), TODAY).allowed
    waiting = embargo_lifted(c, frozenset({"uk"}), TODAY)
    assert not waiting.allowed and dict(waiting.facts)["waiting_for"] == "fr"
    assert not embargo_lifted(c, frozenset({"uk", "kr"}), TODAY).allowed
    assert embargo_lifted(c, frozenset({"uk", "fr"}), TODAY).allowed


def test_the_embargo_by_date_lifts_on_that_day_and_none_never_holds() -> None:
    c = campaign(results={"embargo": "date", "until": "2026-12-01"})
    assert not embargo_lifted(c, frozenset({"uk", "fr"}), date(2026, 11, 30)).allowed
    assert embargo_lifted(c, frozenset(), date(2026, 12, 1)).allowed
    assert embargo_lifted(campaign(results={"embargo": "none"}), frozenset(), TODAY).allowed


def test_shares_decide_who_reads_which_results() -> None:
    c = campaign(results={"embargo": "none", "shares": [
        {"partner": "uk"}, {"partner": "fr", "tasks": ["capitals"], "models": ["big"]}]})
    uk, fr, kr = person("ada", "uk"), person("odile", "fr"), person("kim", "kr")
    assert len(readable_pairs(uk, c, TODAY)) == 4
    assert readable_pairs(fr, c, TODAY) == {("capitals", "big")}
    assert readable_pairs(officer("fr"), c, TODAY) == {("capitals", "big")}
    assert readable_pairs(kr, c, TODAY) == frozenset()
    assert not can_read_results(kr, c, frozenset(), TODAY).allowed
    admin = Principal("admin", "admin", (), (Grant(Role.ADMIN, ScopeKind.GLOBAL),))
    assert not can_read_results(admin, c, frozenset(), TODAY).allowed   # the operator is no partner
    assert can_see_campaign(admin, c, TODAY, frozenset()).allowed
    only_uk = campaign(results={"embargo": "none", "shares": [{"partner": "uk"}]})
    assert not can_read_results(fr, only_uk, frozenset(), TODAY).allowed
    assert can_see_campaign(fr, only_uk, TODAY, frozenset()).allowed     # progress, not results


def test_results_need_a_share_and_a_lifted_embargo() -> None:
    c = campaign()
    uk = person("ada", "uk")
    held = can_read_results(uk, c, frozenset({"uk"}), TODAY)
    assert not held.allowed and "embargoed" in held.rule
    assert can_read_results(uk, c, frozenset({"uk", "fr"}), TODAY).allowed


def test_only_a_partners_programme_officer_approves_its_release() -> None:
    c = campaign()
    assert can_approve_release(officer("fr"), c, "fr").allowed
    assert not can_approve_release(officer("fr"), c, "uk").allowed
    assert not can_approve_release(officer("kr"), c, "kr").allowed
    assert not can_approve_release(person("odile", "fr"), c, "fr").allowed
    dated = campaign(results={"embargo": "date", "until": "2027-01-01"})
    assert not can_approve_release(officer("fr"), dated, "fr").allowed


def test_people_of_no_partner_see_nothing_of_a_campaign() -> None:
    c = campaign()
    assert not can_see_campaign(person("kim", "kr"), c, TODAY, frozenset()).allowed
    assert can_see_campaign(person("kim", "kr"), c, TODAY, frozenset({"kim"})).allowed   # a member


@given(approvals=st.sets(st.sampled_from(["uk", "fr", "kr", "ca"])))
def test_property_the_approval_embargo_lifts_exactly_when_all_partners_approved(approvals: set[str]) -> None:
    c = campaign()
    assert embargo_lifted(c, frozenset(approvals), TODAY).allowed == ({"uk", "fr"} <= approvals)


# ---------------------------------------------------------------------------- the job
def test_the_job_script_runs_inspect_against_the_endpoint() -> None:
    c = campaign()
    script = job_script(c, c.tasks[1], c.models[1], "/usr/bin/python3", "/t/capitals.py")
    assert script.startswith("#!/bin/bash\n")
    assert ("exec /usr/bin/python3 -m inspect_ai eval /t/capitals.py@capitals"
            " --model openai-api/big/org/big-7b --model-base-url https://models.example/v1"
            " --log-dir inspect-logs --log-format json") in script
    assert 'export BIG_API_KEY="${BIG_API_KEY:-accord-no-key}"' in script
    assert api_key_env(c.models[0]) == "CALC_API_KEY"


def test_intervals_are_clipped_for_accuracy() -> None:
    assert interval("accuracy", 0.25, 0.25) == (0.0, 0.739991)
    assert interval("mean", 0.25, 0.25) == (-0.239991, 0.739991)
    assert interval("accuracy", 0.5, float("nan")) == (None, None)


def test_bytes_that_are_not_an_inspect_log_are_refused_by_inspects_reader() -> None:
    with pytest.raises(InvalidInput, match="is not an Inspect log"):
        summarise(b'{"hello": "world"}')


# ---------------------------------------------------------------------------- the store
def test_the_store_writes_each_fact_once(db_url: str) -> None:
    """On SQLite and PostgreSQL."""
    store = SqlStore(db_url)
    try:
        s = SqlCampaigns(store)
        at = datetime(2026, 11, 20, tzinfo=UTC)
        s.add_campaign("{}", "c1", "ada", at)
        with pytest.raises(Conflict):
            s.add_campaign("{}", "c1", "bob", at)
        run = Run("c1", "arithmetic", "calc", "j1", "ada", at)
        assert s.add_run(run) == run
        assert s.add_run(Run("c1", "arithmetic", "calc", "j2", "bob", at)).job_id == "j1"
        log = CollectedLog("c1", "arithmetic", "calc", "j1", "a.json", "ab" * 32, 3, "{}", at, b"abc")
        assert s.add_log(log) is True
        assert s.add_log(log) is False                       # read twice, stored once
        assert [x.content for x in s.logs("c1")] == [None]
        assert [x.content for x in s.logs("c1", content=True)] == [b"abc"]
        assert [r.job_id for r in s.runs(uncollected=True)] == ["j1"]
        s.mark_collected("c1", "arithmetic", "calc", at)
        assert s.runs(uncollected=True) == []
        assert s.approve("c1", "uk", "pouk", at) and not s.approve("c1", "uk", "pouk", at)
        assert s.approvals("c1") == [("uk", "pouk", at)]
    finally:
        store.close()
