"""Every owned kind has its orphan check, against the kind that owns it."""

from __future__ import annotations

from stigmer.consistency.invariants import OWNERSHIPS
from stigmer.resources.kinds import KINDS


def test_each_owned_kind_has_one_ownership_row_naming_its_owner_kind() -> None:
    owned = {kind.name: kind.owner_kind for kind in KINDS if kind.owner_kind is not None}
    rows = {row.child.name: row.parent.name for row in OWNERSHIPS}

    assert rows == owned
    assert len(OWNERSHIPS) == len(rows)


def test_each_owner_field_is_a_field_of_the_child_message() -> None:
    for row in OWNERSHIPS:
        descriptor = row.child.message.DESCRIPTOR
        for name in row.owner_field.split("."):
            field = descriptor.fields_by_name[name]
            descriptor = field.message_type
        assert descriptor is None, f"{row.owner_field} of {row.child.name} is not a scalar"
