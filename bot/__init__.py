"""Everything that talks to Telegram: CLI, application wiring, publisher, scheduler, handlers."""
