"""A cluster's associations through ``sacctmgr`` (see :class:`accord.ports.enforcement.SlurmAccounts`
and ``docs/design/site-enforcement.md``): one parsable listing per sync, one ``sacctmgr -i``
command per action. Every failure (slurmdbd down, a refusal) is :class:`Unavailable` with
sacctmgr's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from accord.adapters.slurm.commands import CommandRunner, SubprocessRunner
from accord.domain.enforcement.planner import ROOT, Action, ActionKind, Assoc, Limits, managed
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.errors import InDoubt, Unavailable

FORMAT = "Account,User,ParentName,GrpTRESMins,GrpSubmitJobs,GrpJobs"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
GPU_TRES = "gres/gpu"


def parse_associations(text: str) -> list[Assoc]:
    """``sacctmgr -n -P list assoc format=FORMAT`` as associations (user associations carry
    no parent in that listing: their parent is their account).

    >>> parse_associations("acc-x||root|gres/gpu=5|0|0\\nacc-x|ada||||\\n")[0].limits
    Limits(gpu_minutes=5, submit_jobs=0, jobs=0)
    """
    out = []
    for line in text.splitlines():
        f = line.split("|")
        if len(f) < 6 or not f[0]:
            continue
        limits = Limits(_tres(f[3], GPU_TRES), _int(f[4]), _int(f[5]))
        out.append(Assoc(f[0], f[2] or (f[0] if f[1] else ROOT), f[1], limits))
    return out


def _tres(text: str, name: str) -> int | None:
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key == name and value.lstrip("-").isdigit():
            return None if int(value) < 0 else int(value)
    return None


def _int(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() and int(text) >= 0 else None


def _limit_args(limits: Limits) -> list[str]:
    def v(x: int | None) -> str:
        return "-1" if x is None else str(x)
    return [f"GrpTRESMins={GPU_TRES}={v(limits.gpu_minutes)}", f"GrpSubmitJobs={v(limits.submit_jobs)}",
            f"GrpJobs={v(limits.jobs)}"]


def parse_usage(text: str, period: str, end: datetime) -> list[AccountUsage]:
    """``sacct -X -n -P -a --truncate -o Account,User,Start,End,AllocTRES`` summed per Accord
    account and user (a running job counts up to ``end``).

    >>> parse_usage("acc-a|ada|2026-01-01T00:00:00|2026-01-01T00:01:00|cpu=1,gres/gpu=2\\n"
    ...             "accord|root|2026-01-01T00:00:00|Unknown|gres/gpu=1\\n", "2026-01",
    ...             datetime(2026, 1, 2, tzinfo=UTC))
    [AccountUsage(period='2026-01', account='acc-a', user='ada', gpu_seconds=120.0, jobs=1)]
    """
    sums: dict[tuple[str, str], tuple[float, int]] = {}
    for line in text.splitlines():
        f = line.split("|")
        if len(f) < 5 or not managed(f[0]):
            continue
        start, stop = _when(f[2]), _when(f[3]) or end
        if start is None:
            continue
        gpus = _tres(f[4], GPU_TRES) or 0
        seconds, jobs = sums.get((f[0], f[1]), (0.0, 0))
        sums[(f[0], f[1])] = (seconds + gpus * max(0.0, (stop - start).total_seconds()), jobs + 1)
    return [AccountUsage(period, a, u, s, n) for (a, u), (s, n) in sorted(sums.items())]


def _when(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


class SacctmgrAccounts:
    """One cluster's associations."""

    def __init__(self, cluster: str, env: Mapping[str, str], runner: CommandRunner | None = None) -> None:
        self.cluster = cluster
        self.env = dict(env)
        self.runner = runner or SubprocessRunner()

    def _run(self, *argv: str) -> str:
        try:
            return self.runner.run(("sacctmgr", *argv), self.env).check().stdout
        except InDoubt as exc:
            raise Unavailable(str(exc)) from None

    def associations(self) -> list[Assoc]:
        """See :meth:`accord.ports.enforcement.SlurmAccounts.associations`."""
        return parse_associations(self._run("-n", "-P", "list", "assoc", f"cluster={self.cluster}",
                                            f"format={FORMAT}"))

    def usage(self, period: str, start: datetime, end: datetime) -> list[AccountUsage]:
        """See :meth:`accord.ports.enforcement.SlurmAccounts.usage`."""
        try:
            done = self.runner.run(("sacct", "-M", self.cluster, "-X", "-n", "-P", "-a", "--truncate",
                                    "-S", start.astimezone(UTC).strftime(TIME_FORMAT),
                                    "-E", end.astimezone(UTC).strftime(TIME_FORMAT),
                                    "-o", "Account,User,Start,End,AllocTRES"),
                                   {**self.env, "TZ": "UTC", "SLURM_TIME_FORMAT": TIME_FORMAT}).check()
        except InDoubt as exc:
            raise Unavailable(str(exc)) from None
        return parse_usage(done.stdout, period, end)

    def job_owner(self, local_id: str) -> tuple[str, str]:
        """The Slurm account and user of one job (``sacct``), for its signed usage.

        Raises:
            Unavailable: sacct failed or does not know the job.
        """
        try:
            out = self.runner.run(("sacct", "-M", self.cluster, "-X", "-n", "-P", "-j", local_id,
                                   "-o", "Account,User"), self.env).check().stdout
        except InDoubt as exc:
            raise Unavailable(str(exc)) from None
        fields = (out.splitlines() or [""])[0].split("|")
        if len(fields) < 2 or not fields[0]:
            raise Unavailable(f"sacct does not know job {local_id} yet")
        return fields[0], fields[1]

    def carry_out(self, action: Action) -> None:
        """See :meth:`accord.ports.enforcement.SlurmAccounts.carry_out` (a NOTE runs nothing)."""
        c = f"cluster={self.cluster}"
        if action.kind is ActionKind.ADD_ACCOUNT:
            limits = [x for x in _limit_args(action.limits or Limits()) if not x.endswith("=-1")]
            self._run("-i", "add", "account", action.account, f"parent={action.parent}", c,
                      "description=accord", "organization=accord", *limits)
        elif action.kind is ActionKind.SET_LIMITS:
            self._run("-i", "modify", "account", "where", f"name={action.account}", c, "set",
                      *_limit_args(action.limits or Limits()))
        elif action.kind is ActionKind.ADD_USER:
            self._run("-i", "add", "user", action.user, f"account={action.account}", c)
        elif action.kind is ActionKind.REMOVE_USER:
            self._run("-i", "remove", "user", action.user, "where", f"account={action.account}", c)
