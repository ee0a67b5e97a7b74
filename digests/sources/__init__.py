"""Sources the archive keeps in step with: local folders, feed and document URLs, git repositories.

``config`` and ``locations`` and ``policy`` are pure (what a source is, when to fetch it, which
headers to send); ``fetch`` (httpx), ``git`` (the git binary) and ``local`` (the file system) do
the I/O; ``refresh`` runs fetch -> ingest for due sources and records each one's health.
"""
