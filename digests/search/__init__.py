"""Archive search, the pure part: tokens, the query language, index entries and ranking.

No database here: digests.store.search keeps the index and answers queries with these.
"""
