"""Consul's JSON shapes (field names, order, null vs []) for model objects."""

from __future__ import annotations

import base64
from typing import Any

from sim.consul.catalog import Check, Node, Service
from sim.consul.durations import format_duration
from sim.consul.kv import KVEntry
from sim.consul.sessions import Session

Json = dict[str, Any]


def kv_entry(e: KVEntry, with_value: bool = True) -> Json:
    out: Json = {
        "LockIndex": e.lock_index,
        "Key": e.key,
        "Flags": e.flags,
        "Value": base64.b64encode(e.value).decode() if (with_value and e.value) else None,
    }
    if e.session:
        out["Session"] = e.session
    out["CreateIndex"] = e.create_index
    out["ModifyIndex"] = e.modify_index
    return out


def session(s: Session) -> Json:
    out: Json = {"ID": s.id, "Name": s.name, "Node": s.node, "LockDelay": s.lock_delay_ns,
                 "Behavior": s.behavior, "TTL": s.ttl}
    if s.show_checks:
        out["Checks"] = list(s.node_checks)
    out["NodeChecks"] = list(s.node_checks) or None
    out["ServiceChecks"] = [{"ID": c, "Namespace": ""} for c in s.service_checks] or None
    out["CreateIndex"] = s.create_index
    out["ModifyIndex"] = s.modify_index
    return out


def check(c: Check, with_indexes: bool = True) -> Json:
    definition: Json = {}
    if c.interval:
        definition["Interval"] = c.interval
    if c.timeout:
        definition["Timeout"] = c.timeout
    if c.dcsa_ns:
        definition["DeregisterCriticalServiceAfter"] = format_duration(c.dcsa_ns)
    out: Json = {
        "Node": c.node, "CheckID": c.check_id, "Name": c.name, "Status": c.status,
        "Notes": c.notes, "Output": c.output, "ServiceID": c.service_id,
        "ServiceName": c.service_name, "ServiceTags": list(c.service_tags), "Type": c.type,
        "Interval": c.interval, "Timeout": c.timeout, "ExposedPort": 0, "Definition": definition,
    }
    out["CreateIndex"] = c.create_index if with_indexes else 0
    out["ModifyIndex"] = c.modify_index if with_indexes else 0
    return out


def node(n: Node) -> Json:
    return {
        "ID": n.node_id, "Node": n.name, "Address": n.address, "Datacenter": n.datacenter,
        "TaggedAddresses": {"lan": n.address, "lan_ipv4": n.address, "wan": n.address,
                            "wan_ipv4": n.address},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": n.create_index, "ModifyIndex": n.modify_index,
    }


def service(s: Service) -> Json:
    return {
        "ID": s.service_id, "Service": s.name, "Tags": list(s.tags), "Address": s.address,
        "Meta": dict(s.meta), "Port": s.port, "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False, "CreateIndex": s.create_index, "ModifyIndex": s.modify_index,
    }


def catalog_service(n: Node, s: Service) -> Json:
    return {
        "ID": n.node_id, "Node": n.name, "Address": n.address, "Datacenter": n.datacenter,
        "TaggedAddresses": node(n)["TaggedAddresses"], "NodeMeta": {"consul-network-segment": ""},
        "ServiceKind": "", "ServiceID": s.service_id, "ServiceName": s.name,
        "ServiceTags": list(s.tags), "ServiceAddress": s.address, "ServicePort": s.port,
        "ServiceMeta": dict(s.meta), "ServiceWeights": {"Passing": 1, "Warning": 1},
        "ServiceEnableTagOverride": False, "CreateIndex": s.create_index, "ModifyIndex": s.modify_index,
    }
