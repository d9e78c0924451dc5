"""``accord site run`` refuses intervals out of range at start, naming each option (nothing
is contacted: the check comes before the key is read or the hub is called)."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.cli import main


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("--heartbeat", "0", "1 to 600 seconds"),
    ("--heartbeat", "nan", "1 to 600 seconds"),
    ("--resync", "inf", "10 to 604800 seconds"),
    ("--sync", "-5", "1 to 86400 seconds"),
])
def test_an_interval_out_of_range_is_refused_by_name(option: str, value: str, allowed: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["site", "run", "--hub", "http://127.0.0.1:9", "--site", "isambard", "--key",
              str(tmp_path / "missing.key"), "--work-dir", str(tmp_path / "w"), option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert option in err and "out of range" in err and allowed in err and value in err, err
    assert "Traceback" not in err and "missing.key" not in err
