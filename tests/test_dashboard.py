"""`kws-search dashboard`: optuna-dashboard serves the study, its metrics, constraints, files."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from optuna.trial import TrialState

from kws_search import cli
from kws_search.commands import dashboard
from kws_search.search.attrs import OBJECTIVES
from kws_search.search.progress import feasible_front

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def served(tiny_study) -> Iterator[str]:
    """The dashboard for the tiny study on a free loopback port, in a thread; its base URL."""
    settings, _ = tiny_study
    artifacts = dashboard.study_artifact_dir(settings.study.name, settings.study.storage)
    server = dashboard.build_server(settings.study.storage, "127.0.0.1", 0, artifacts)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=TIMEOUT)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        return response.read()


def get_json(url: str) -> Any:
    return json.loads(get(url))


def test_artifact_dir_is_the_recorded_one(tiny_study):
    settings, _ = tiny_study
    found = dashboard.study_artifact_dir(settings.study.name, settings.study.storage)
    assert found is not None and found.resolve() == settings.study.artifact_dir.resolve()


def test_dashboard_serves_study_metrics_constraints_and_attrs(tiny_study, served):
    settings, study = tiny_study
    assert get_json(f"{served}/api/meta")["artifact_is_available"]
    summaries = get_json(f"{served}/api/studies")["study_summaries"]
    summary = next(s for s in summaries if s["study_name"] == settings.study.name)
    assert summary["directions"] == ["minimize", "maximize", "maximize"]

    detail = get_json(f"{served}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == list(OBJECTIVES)
    assert {a["key"] for a in detail["user_attrs"]} >= {"teacher", "quality_bar"}
    served_trials = {t["number"]: t for t in detail["trials"]}
    trials = study.get_trials(deepcopy=False)
    assert set(served_trials) == {t.number for t in trials}
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        shown = served_trials[t.number]
        assert shown["constraints"] == t.system_attrs["constraints"]  # dashboard greys > 0
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        assert {"val_quality", "macs", "bytes", "quant"} <= set(attrs)
        assert float(attrs["macs"]) == t.user_attrs["macs"]
    feasible_numbers = {t.number for t in feasible_front(study)}
    assert feasible_numbers <= {t["number"] for t in detail["best_trials"]}


def test_dashboard_serves_trial_checkpoints(tiny_study, served):
    _, study = tiny_study
    summary = get_json(f"{served}/api/studies")["study_summaries"][0]
    detail = get_json(f"{served}/api/studies/{summary['study_id']}")
    trial = next(t for t in detail["trials"] if t["state"] == "Complete")
    attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
    artifact = next(a for a in trial["artifacts"]
                    if a["artifact_id"] == attrs["checkpoint_artifact"])
    assert artifact["filename"].endswith(".pt")
    body = get(f"{served}/artifacts/{summary['study_id']}/{trial['trial_id']}/"
               f"{artifact['artifact_id']}")
    assert len(body) > 1000  # a torch checkpoint (zip)
    assert b"<html" in get(f"{served}/dashboard").lower()


def test_busy_port_is_a_clear_error(tiny_study):
    settings, _ = tiny_study
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="choose another --port"):
            dashboard.build_server(settings.study.storage, "127.0.0.1", port)


def test_cli_dashboard_missing_study_errors(tmp_path, capsys, monkeypatch):
    if dashboard not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, dashboard))
    code = cli.main(["dashboard", "--study", "x", "--storage",
                     f"sqlite:///{tmp_path / 'none.db'}", "--port", "0"])
    assert code == 1 and capsys.readouterr().err.startswith("error: no study database")
