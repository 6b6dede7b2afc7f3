"""pytest fixtures: a real Mosquitto, started by the test with the project's configuration.

    def test_something(mosquitto_broker):
        client.connect(mosquitto_broker.host, mosquitto_broker.port)
        ...
        mosquitto_broker.restart()          # graceful: persistent sessions survive
        mosquitto_broker.restart(graceful=False)   # SIGKILL then start again

Each test gets its own broker on a free port with persistence in the test's tmp dir, killed at
teardown. `mosquitto_factory` starts more (e.g. one with per-seal authentication and the ACL).
Tests using these are marked `mosquitto` and skipped when the binary is missing.
"""

from __future__ import annotations

import os

import pytest

from navseal.gateway.mosquitto_broker import DEFAULT_BINARY, MosquittoBroker


def _require_binary() -> None:
    if not os.path.exists(DEFAULT_BINARY):
        pytest.skip(f"mosquitto not installed at {DEFAULT_BINARY} (Debian package 'mosquitto')")


@pytest.fixture
def mosquitto_factory(tmp_path_factory):
    _require_binary()
    started: list[MosquittoBroker] = []

    def make(**kwargs) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"), **kwargs)
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.kill()


@pytest.fixture
def mosquitto_broker(mosquitto_factory) -> MosquittoBroker:
    return mosquitto_factory()


def pytest_collection_modifyitems(items):
    for item in items:
        if "mosquitto_broker" in getattr(item, "fixturenames", ()) or "mosquitto_factory" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.mosquitto)
