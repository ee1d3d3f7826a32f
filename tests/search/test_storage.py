"""Study storage: masked URLs, artifact folders, and the one way a study is opened to read."""

from __future__ import annotations

import optuna
import pytest

from kws_search.search.attrs import DIRECTIONS
from kws_search.search.storage import StudyError, artifact_dir_for, load_study, masked_url


def test_passwords_never_reach_messages():
    assert masked_url("postgresql://kws:secret@db-host/kws") == "postgresql://kws:***@db-host/kws"
    assert masked_url("sqlite:///studies/x.db") == "sqlite:///studies/x.db"
    assert masked_url("not a url") == "not a url"
    with pytest.raises(StudyError) as error:
        load_study("kws", "postgresql://kws:secret@127.0.0.1:1/kws")
    assert "secret" not in str(error.value) and "***" in str(error.value)


def test_artifacts_sit_beside_a_sqlite_file_else_under_studies(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert artifact_dir_for(url, "s") == tmp_path / "s-artifacts"
    assert str(artifact_dir_for("postgresql://h/db", "s")) == "studies/s-artifacts"


def test_load_study_says_what_is_missing(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with pytest.raises(StudyError, match="no study database"):
        load_study("kws", url)
    optuna.create_study(study_name="other", storage=url, directions=list(DIRECTIONS))
    with pytest.raises(StudyError, match="studies there: other"):
        load_study("kws", url)
    with pytest.raises(StudyError, match="no trials yet"):
        load_study("other", url)
    assert load_study("other", url, require_trials=False).study_name == "other"
    optuna.create_study(study_name="single", storage=url)
    with pytest.raises(StudyError, match="not a kws-search study"):
        load_study("single", url, require_trials=False)
