"""Configuration: broker properties, cluster ids, ports from the environment, the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm_devstack.errors import LaunchError
from crm_devstack.kafka import broker_properties, new_cluster_id
from crm_devstack.services import SERVICES, service_spec
from crm_devstack.stack import StackConfig


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")


def test_broker_is_a_local_single_node_kraft_cluster(tmp_path: Path) -> None:
    props = broker_properties(log_dir=tmp_path, port=1111, controller_port=2222)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1111"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:2222"
    assert props["num.partitions"] == "6"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_stack_config_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    monkeypatch.setenv("CRM_KAFKA_PORT", "29092")
    monkeypatch.setenv("CRM_CONTACTS_PORT", "60051")
    monkeypatch.setenv("CRM_SECANTUS_SYNC_ON_COMMIT", "0")
    config = StackConfig.from_env()
    assert config.kafka_port == 29092
    assert config.kafka_controller_port == 19093
    assert config.mongodb_port == 27117
    assert config.service_ports["contacts"] == 60051
    assert not config.secantus_sync_on_commit
    assert config.data_dir == tmp_path / "data"
    assert config.logs_dir == tmp_path / "logs"


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_bad_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CRM_MONGODB_PORT", value)
    with pytest.raises(LaunchError, match="CRM_MONGODB_PORT"):
        StackConfig.from_env()


def test_service_registry() -> None:
    contacts = service_spec("contacts")
    assert contacts.module == "crm_contacts"
    assert contacts.topics == ("crm.contacts.v1",)
    assert len({spec.name for spec in SERVICES}) == len(SERVICES)
    assert len({spec.default_port for spec in SERVICES}) == len(SERVICES)
    with pytest.raises(LaunchError, match="unknown service 'nope'"):
        service_spec("nope")
