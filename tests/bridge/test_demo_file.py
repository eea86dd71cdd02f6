"""The demo file marks itself illustrative and covers the municipalities the demo promises."""

from __future__ import annotations

from services.bridge.entrypoints.demo import DEMO_CSV, read_demo_libraries


def test_the_demo_file_says_it_is_illustrative() -> None:
    first_line = DEMO_CSV.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# illustrative")


def test_the_demo_libraries() -> None:
    libraries = read_demo_libraries()
    codes = {entry["municipality_code"] for item in libraries for entry in item["service_area"]}
    assert {"GM0363", "GM0599", "GM0518", "GM0344", "GM0014", "GM0772"} <= codes
    assert sum(1 for item in libraries if len(item["service_area"]) > 1) == 1
