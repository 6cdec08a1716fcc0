"""A value this process's flows use until a `with` block ends: the settings (cdnlake/run_settings.py)
and the services (cdnlake/services.py) are installed this way by the command line and by tests.

A stack, not a single slot: blocks nest (a test's services around a command's settings), and the
innermost wins. Process-wide, not per thread: Prefect runs a flow's tasks in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Installed(Generic[T]):
    def __init__(self) -> None:
        self._values: list[T] = []
        self._guard = threading.Lock()

    def current(self, otherwise: Callable[[], T]) -> T:
        """The innermost installed value, else `otherwise()`."""
        with self._guard:
            if self._values:
                return self._values[-1]
        return otherwise()

    @contextmanager
    def use(self, value: T) -> Iterator[T]:
        with self._guard:
            self._values.append(value)
        try:
            yield value
        finally:
            with self._guard:
                self._values.remove(value)
