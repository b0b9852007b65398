"""Calls that must not hang their caller: a function run on a thread, waited for a while."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def call_with_timeout(fn: Callable[[], T], timeout: float, name: str) -> T:
    """``fn()`` on a daemon thread; TimeoutError if it has not returned in ``timeout``.

    The thread cannot be killed: a call that hangs keeps its thread (a daemon, so it
    never blocks exit). Callers guard against starting a second one.
    """
    box: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{name} did not return within {timeout:g} s")
    if failure:
        raise failure[0]
    return box[0]
