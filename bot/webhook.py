"""Taking updates by webhook: PTB's server, with the secret Telegram must send, instead of getUpdates.

PTB sets the webhook on start (setWebhook with the URL and secret) and refuses with 403 every POST
whose X-Telegram-Bot-Api-Secret-Token header is not the secret. Polling again later needs no step
of ours: PTB's start_polling calls deleteWebhook before its first getUpdates.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import BadRequest
from telegram.ext import Application

from bot.config import WebhookConfig
from digests.errors import ConfigError, DigestError

log = logging.getLogger(__name__)


def webhook_arguments(webhook: WebhookConfig) -> dict[str, Any]:
    """What Application.run_webhook and Updater.start_webhook take for this config."""
    return {
        "listen": webhook.listen,
        "port": webhook.port,
        "url_path": webhook.path or "/",
        "webhook_url": webhook.url,
        "secret_token": webhook.secret_token.get_secret_value(),
        "drop_pending_updates": False,  # as polling: updates sent while the bot was down are answered
    }


def run_webhook(application: Application, webhook: WebhookConfig) -> None:
    """Serve Telegram's update POSTs until SIGINT or SIGTERM, the scheduler running beside them."""
    log.info("updates by webhook: Telegram posts to %s, the bot listens on %s:%d%s", webhook.url,
             webhook.listen, webhook.port, webhook.path)
    try:
        application.run_webhook(**webhook_arguments(webhook), close_loop=False)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise ConfigError(f"telegram.webhook: cannot listen on {webhook.listen}:{webhook.port}: "
                          f"{exc.strerror or exc}") from None
    except BadRequest as exc:  # setWebhook refused: Telegram says why (host not found, bad port...)
        raise DigestError(f"Telegram refused the webhook {webhook.url}: {exc.message}") from None
