"""Calling the flows in-process, as the command line does."""

from __future__ import annotations

from typing import Any

from cdnlake.run_settings import use_settings
from cdnlake.settings import Settings


def run_flow(flow: Any, settings: Settings, **parameters: Any) -> Any:
    """`flow(**parameters)` with `settings` installed for the call: settings are never a parameter."""
    with use_settings(settings):
        return flow(**parameters)
