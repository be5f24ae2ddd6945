"""Agents stored before skill_refs became SkillRefs (bare slugs in field 5)
read as refs to the latest version of each slug."""

from __future__ import annotations

from stigmer.api.v1 import agent_pb2
from stigmer.pipeline.envelope import decode
from stigmer.resources.kinds import AGENT
from stigmer.store.base import Record


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_an_old_row_with_bare_slugs_reads_as_skill_refs_to_latest() -> None:
    spec = (
        _field(2, b"Plan the work in small steps.") + _field(5, b"planning") + _field(5, b"notes")
    )
    old_row = _field(4, spec)
    record = Record(kind="Agent", id="agt-1", org="local", slug="planner", version=1, data=old_row)

    agent = decode(AGENT, record)

    assert [(r.slug, r.version) for r in agent.spec.skill_refs] == [("planning", ""), ("notes", "")]
    assert agent.spec.instructions == "Plan the work in small steps."
    # Written back, it is a row of today's shape: no field 5 left.
    again = agent_pb2.Agent.FromString(agent.SerializeToString())
    assert list(again.spec.skill_refs) == list(agent.spec.skill_refs)
    assert b"\x2a\x08planning" not in agent.SerializeToString()
