"""Ingest: walk files, folders and archives; decode, parse, normalise, dedupe and store their items.

``walk`` finds the documents, ``decode`` turns their bytes into text, ``normalize`` cleans items
and gives them their cross-source identity, ``pipeline`` runs it all (``ingest()``) and hands the
rows to ``digests.store.ingest``.
"""
