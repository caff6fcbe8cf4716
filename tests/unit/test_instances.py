"""Instance ids name the MQTT client ids and turn on ingest's shared subscription; without
one, a single instance keeps the ids it always had."""

from __future__ import annotations

import pytest

from runtime.instances import (
    DEFAULT_INGEST_GROUP,
    client_id,
    commands_client_id,
    holder_name,
    ingest_settings,
)
from runtime.settings import Settings, SettingsError, load_settings


def test_without_an_instance_id_the_ids_are_the_single_instances() -> None:
    settings = Settings()
    assert client_id(settings, "eldercare-alerts", "-urgent") == "eldercare-alerts-urgent"
    ingest = ingest_settings(settings)
    assert ingest.client_id == "eldercare-ingest"
    assert ingest.shared_group is None
    assert ingest.filters() == ["eldercare/+/+/readings"]
    assert ":" in holder_name(settings)  # host:pid


def test_an_instance_id_names_the_clients_and_shares_ingest() -> None:
    settings = Settings(instance_id="b")
    assert client_id(settings, "eldercare-alerts", "-urgent") == "eldercare-alerts-b-urgent"
    assert client_id(settings, "eldercare-alerts", "-commands") == "eldercare-alerts-b-commands"
    ingest = ingest_settings(settings)
    assert ingest.client_id == "eldercare-ingest-b"
    assert ingest.shared_group == DEFAULT_INGEST_GROUP
    assert ingest.filters() == [f"$share/{DEFAULT_INGEST_GROUP}/eldercare/+/+/readings"]
    assert holder_name(settings) == "b"


def test_the_alerts_process_and_an_urgent_process_beside_it_publish_commands_apart() -> None:
    for settings in (Settings(), Settings(instance_id="b")):
        full, urgent = commands_client_id(settings, True), commands_client_id(settings, False)
        assert full != urgent
        assert full.endswith("-commands")
        assert urgent.endswith("-urgent-commands")
    assert commands_client_id(Settings(instance_id="b"), True) == "eldercare-alerts-b-commands"


def test_a_shared_group_given_is_kept() -> None:
    settings = Settings(instance_id="a", ingest={"shared_group": "mine"})
    assert ingest_settings(settings).shared_group == "mine"


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "x" * 41, "+"])
def test_an_instance_id_that_cannot_be_in_a_client_id_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="ELDERCARE_INSTANCE_ID"):
        load_settings(instance_id=bad)
