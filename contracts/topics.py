"""The Kafka topics our services publish, with the settings they are created with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    producer: str
    key: str
    description: str
    partitions: int = 3

    @property
    def config(self) -> dict[str, str]:
        # Public-money history is kept forever; nothing is compacted away.
        return {"retention.ms": "-1", "cleanup.policy": "delete"}


GRANTS = TopicSpec(
    name="ido.grants.v1",
    producer="payments",
    key=(
        "the CBS code (GM + 4 digits) of the municipality a grant was awarded to, kept for the grant's life "
        "(also after a merger), so a stream's events stay in one partition, in order; `scheme-<year>` for a frame"
    ),
    description="BZK's awards, advances, settlements and reclaims of the SPUK IDO.",
)
BRIDGE = TopicSpec(
    name="ido.bridge.v1",
    producer="bridge",
    key="the library's organisation identifier (e.g. NL-KVK-<KvK number>); `bridge-frame` for the frame",
    description="The one-off bridging subsidy (overbruggingsregeling) paid by the KB to libraries.",
)
EXPENDITURES = TopicSpec(
    name="ido.expenditures.v1",
    producer="ledger",
    key="the municipality's CBS code (GM + 4 digits)",
    description="Expenditures, reversals and year closings posted by municipalities.",
)
DEAD_LETTER = TopicSpec(
    name="ido.deadletter.v1",
    producer="any consumer",
    key="the key of the refused message",
    description="Messages a consumer could not apply, with the reason in the headers.",
    partitions=1,
)

PUBLISHED_TOPICS: tuple[TopicSpec, ...] = (GRANTS, BRIDGE, EXPENDITURES)
ALL_TOPICS: tuple[TopicSpec, ...] = (*PUBLISHED_TOPICS, DEAD_LETTER)


def by_name(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
