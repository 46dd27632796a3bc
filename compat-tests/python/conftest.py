"""Reports each scenario's outcome as `client:scenario` for compat-tests/run-clients.sh.

A test module names its client in `CLIENT`; a test `test_commit_resume` is scenario
`commit-resume`, a parametrized `test_compression[gzip]` is `compression-gzip` (a parameter
`classic` adds nothing: `test_group[classic]` is `group`). When
SLUICE_RESULTS names a file, one line per scenario is appended to it at the end of the session:
`client:scenario<TAB>pass|fail|skip<TAB>pytest node id`.
"""

from __future__ import annotations

import os

import pytest

_outcomes: dict[str, tuple[str, str]] = {}


def scenario_id(item) -> str:
    client = getattr(item.module, "CLIENT", None)
    if client is None:
        raise pytest.UsageError(f"{item.module.__name__} does not set CLIENT")
    name = item.originalname.removeprefix("test_").replace("_", "-")
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.id != "classic":
        name += "-" + callspec.id
    return f"{client}:{name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    key = scenario_id(item)
    if report.failed:
        _outcomes[key] = ("fail", item.nodeid)
    elif report.skipped and key not in _outcomes:
        _outcomes[key] = ("skip", item.nodeid)
    elif report.when == "call" and report.passed and key not in _outcomes:
        _outcomes[key] = ("pass", item.nodeid)


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SLUICE_RESULTS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(f"{key}\t{outcome}\t{nodeid}\n" for key, (outcome, nodeid) in sorted(_outcomes.items()))
