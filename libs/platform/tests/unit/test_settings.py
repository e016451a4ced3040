"""Settings fail fast with a clear message."""

from __future__ import annotations

import pytest

from crm_platform.settings import ServiceSettings, load_settings


def test_missing_required_settings_exit_with_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(ServiceSettings, service_name="contacts")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "MONGODB_URI" in err
    assert "KAFKA_BOOTSTRAP_SERVERS" in err


def test_database_defaults_to_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:2")
    settings = load_settings(ServiceSettings, service_name="service-desk")
    assert settings.database_name == "crm_service_desk"
