"""Prefect defaults for the command line (`cdnlake run`, `backfill`, `demo`): not a flow, so not in flows/."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any


def local_prefect(verbose: bool = False) -> AbstractContextManager[Any]:
    """Prefect defaults for the command line: the one place cdnlake sets PREFECT_* values.

    Only defaults (an explicit PREFECT_* variable or profile wins). Without PREFECT_API_URL,
    Prefect 3 starts a temporary API server in a subprocess: its 20 s start-up timeout is too
    short on a busy 2-core machine (we measured 45 s), and its telemetry job competes with the
    run for the SQLite file ("database is locked"). Prefect's INFO line per task state repeats
    our progress lines, so its loggers go to WARNING unless -v.
    """
    # prefect.main configures Prefect's loggers when it is first imported (dictConfig: levels reset).
    # Imported here, before the level is set, so it cannot happen later (e.g. when `cdnlake demo`
    # imports the flow inside this context) and bring back an INFO line per task.
    import prefect.main  # noqa: F401
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if not verbose:
        logging.getLogger("prefect").setLevel(logging.WARNING)
    return temporary_settings(
        set_defaults={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    )


__all__ = ["local_prefect"]
