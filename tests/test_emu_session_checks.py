"""Which checks a new session is bound to: Consul's defaults + fixupEmptySessionChecks.

Real Consul starts from Checks = NodeChecks = ["serfHealth"] and decodes the body over
them, so a body naming only `Checks: [mine]` still binds the gossip check through the
default NodeChecks. The coordinator relies on binding ONLY its own TTL check; these edges
must match Consul or a lock would be lost on gossip flaps in production but not here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_emu_model import Emu


def _register_ttl_check(emu: Emu, check_id: str) -> None:
    body = {"ID": check_id, "Name": check_id, "TTL": "10s", "Status": "passing"}
    assert emu.ok("PUT", "/v1/agent/check/register", body=body).status == 200


def _bound_checks(emu: Emu, body: dict[str, Any]) -> set[str]:
    sid = emu.session(**body)
    info = json.loads(emu.ok("GET", f"/v1/session/info/{sid}").body)[0]
    checks = set(info.get("NodeChecks") or [])
    checks.update(info.get("Checks") or [])
    return checks


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"Name": "default"}, {"serfHealth"}),
        ({"Checks": []}, set()),
        ({"NodeChecks": []}, set()),
        ({"Checks": None}, set()),
        ({"NodeChecks": ["mine"]}, {"mine"}),
        ({"Checks": ["mine"]}, {"mine", "serfHealth"}),
        ({"Checks": ["mine"], "NodeChecks": []}, set()),  # rule 3 drops Checks
        ({"Checks": ["serfHealth"], "NodeChecks": ["mine"]}, {"mine"}),
    ],
)
def test_session_check_defaults_follow_consul(body: dict[str, Any], expected: set[str]) -> None:
    emu = Emu()
    _register_ttl_check(emu, "mine")
    assert _bound_checks(emu, body) == expected


def test_session_bound_only_to_own_check_survives_serf_failure_but_not_own() -> None:
    emu = Emu()
    _register_ttl_check(emu, "mine")
    sid = emu.session(NodeChecks=["mine"], TTL="0s")
    assert emu.acquire("k", sid) is True
    assert emu.ok("PUT", "/v1/agent/check/fail/mine", now=1.0).status == 200
    info = json.loads(emu.ok("GET", f"/v1/session/info/{sid}", now=1.0).body)
    assert info == []
