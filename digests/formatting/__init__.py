"""Item -> Telegram HTML (pure): its dialect, links, shortening, commentary, templates, formatter, previews."""
