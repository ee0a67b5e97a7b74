"""From stored items to planned posts: selection, the due cursor, planning, retry rules, review."""
