"""Archive, storage, selection and formatting for hardcore-digest (knows nothing of Telegram)."""
