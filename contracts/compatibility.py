"""Would a change of schema break a consumer written against the released one?

Breaking: a field removed or renamed, a field's type or format changed, a value allowed before
now refused by a narrower enum. Not breaking: a new optional or required field (consumers
ignore fields they do not know), a description changed.
"""

from __future__ import annotations

from typing import Any


def breaking_changes(released: dict[str, Any], current: dict[str, Any], path: str = "") -> list[str]:
    problems: list[str] = []
    for key in ("type", "format", "const"):
        if key in released and released.get(key) != current.get(key):
            problems.append(f"{path or '<root>'}: {key} changed from {released.get(key)!r} to {current.get(key)!r}")
    if "enum" in released:
        dropped = set(map(str, released["enum"])) - set(map(str, current.get("enum", released["enum"])))
        if dropped:
            problems.append(f"{path}: enum values removed: {sorted(dropped)}")
    released_properties = released.get("properties", {})
    current_properties = current.get("properties", {})
    for name, released_field in released_properties.items():
        field_path = f"{path}.{name}" if path else name
        if name not in current_properties:
            problems.append(f"{field_path}: removed")
            continue
        problems.extend(breaking_changes(released_field, current_properties[name], field_path))
    if "items" in released and isinstance(released["items"], dict):
        problems.extend(breaking_changes(released["items"], current.get("items", {}), f"{path}[]"))
    return problems
