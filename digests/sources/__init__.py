"""Sources the archive keeps in step with: local folders, feed and document URLs, git repositories.

What a source is and where it lives are digests.source_config and digests.source_locations (the
bottom layer, read by digests.config). ``policy`` is pure (when to fetch, which headers to send);
``fetch`` (httpx), ``git`` (the git binary) and ``local`` (the file system) do the I/O;
``refresh`` runs fetch -> ingest for due sources and records each one's health.
"""
