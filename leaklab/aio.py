"""Event loops leaklab owns (a run's async steps, the pytest plugin's async calls)."""

from __future__ import annotations

import asyncio


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop`` as :func:`asyncio.run` closes its own: cancel what is still
    pending, finish async generators and the default executor's threads, then close."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
