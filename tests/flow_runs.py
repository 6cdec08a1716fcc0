"""Calling the flows in-process, as the command line does."""

from __future__ import annotations

from typing import Any

from cdnlake.run_settings import use_settings
from cdnlake.services import Services, use_services
from cdnlake.settings import Settings


def run_flow(flow: Any, given: Settings | Services, **parameters: Any) -> Any:
    """`flow(**parameters)` with `given` installed for the call: settings (the flow builds its
    services from them) or services (fakes among them); neither is ever a flow parameter."""
    with use_services(given) if isinstance(given, Services) else use_settings(given):
        return flow(**parameters)
