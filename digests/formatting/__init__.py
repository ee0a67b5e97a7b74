"""Item -> Telegram HTML: the Telegram HTML dialect, shortening, links, templates, the blurb formatter, preview."""
