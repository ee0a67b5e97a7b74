"""What `digestbot run` does to run as a service: the heartbeat, the start-up log, the HTTP endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.health import forget_heartbeat, schedule_heartbeat
from bot.logs import schedule_startup_lines

if TYPE_CHECKING:
    from telegram.ext import Application


async def on_start(application: Application) -> None:
    """From the Application's post_init, after the slot jobs are scheduled and before it starts."""
    schedule_heartbeat(application)
    schedule_startup_lines(application)
    config = application.bot_data["config"]
    if config.server.enabled:
        from bot.server import ServiceServer  # tornado and prometheus only when asked for

        server = ServiceServer(application.bot_data["db"], config, worker=application.bot_data["worker"])
        await server.start()
        application.bot_data["server"] = server


async def on_shutdown(application: Application) -> None:
    """From post_shutdown: close the endpoint, take this worker's heartbeat away."""
    server = application.bot_data.pop("server", None)
    if server is not None:
        await server.stop()
    await forget_heartbeat(application)
