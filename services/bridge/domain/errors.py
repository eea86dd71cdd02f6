"""The bridge service's refusals; the HTTP layer maps each base class to its status."""

from __future__ import annotations

from services.common.errors import Conflict, InvalidInput, NotFound, RuleBroken, ServiceError


class BridgeError(ServiceError):
    """Base of every refusal of the bridge service."""


class BridgeInvalidInput(BridgeError, InvalidInput):
    """A value is malformed (422)."""


class BridgeNotFound(BridgeError, NotFound):
    """No frame or no such library (404)."""


class BridgeConflict(BridgeError, Conflict):
    """Already exists, or changed by someone else meanwhile (409)."""


class ConcurrentChange(BridgeConflict):
    """Someone else stored events on the same streams between our read and our write."""


class BridgeRuleBroken(BridgeError, RuleBroken):
    """A rule of the arrangement would be broken (422)."""


class FrameExceeded(BridgeRuleBroken):
    """The granted total would exceed the frame."""


class OverPayment(BridgeRuleBroken):
    """A payment would take a library above its grant."""


class FileClosed(BridgeRuleBroken):
    """The library's final account is in: its grant and payments no longer change."""
