"""The settings a flow run uses: the run's environment, or what this process's caller chose.

Flows take only what an operator chooses (date, distributions, resend_email; start, end and
concurrency for the backfill). Everything else comes from here, never from a flow parameter:
whoever can create a flow run (Prefect UI or API) cannot redirect it, and the values are always
the validated ones of `load_settings`.

A deployed run reads CDNLAKE_* (and CDNLAKE_CONFIG) of its process. The command line
(`--source/--warehouse/--reports`) and tests, which call the flows in-process, install their
Settings for the duration of the call with `use_settings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cdnlake.installed import Installed
from cdnlake.settings import Settings, load_settings

_installed: Installed[Settings] = Installed()


def current_settings() -> Settings:
    """The innermost `use_settings` of this process, else load_settings() from the environment."""
    return _installed.current(load_settings)


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Flows called in this process (and its task threads) use `settings` until the block ends."""
    with _installed.use(settings):
        yield settings


__all__ = ["current_settings", "use_settings"]
