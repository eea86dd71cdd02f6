"""How a reading process (the projector's, the replay's checker) hands its error to the parent
(services/common/check_process.py ``pickled_error``): the parent raises it as its own, so it must arrive."""

from __future__ import annotations

import pickle
import threading

from services.common.check_process import pickled_error


class _HoldsALock(Exception):
    """Like a client library's error that keeps its connection: it does not pickle."""

    def __init__(self, text: str):
        super().__init__(text)
        self.lock = threading.Lock()


def test_an_error_arrives_with_its_type_text_and_the_head_before_it() -> None:
    generation, kind, error = pickle.loads(pickled_error(ValueError("offset out of range"), 7))
    assert (generation, kind) == (7, "error")
    assert type(error) is ValueError and str(error) == "offset out of range"


def test_an_error_that_does_not_pickle_arrives_by_its_name_and_text() -> None:
    kind, error = pickle.loads(pickled_error(_HoldsALock("broker went away")))
    assert kind == "error"
    assert type(error) is RuntimeError
    assert str(error) == "_HoldsALock: broker went away"
