# hardcore-digest: `digestbot run` in a slim image, as a non-root user, the database in /data.
# Build: docker build -t hardcore-digest .   Run: see compose.yaml and docs/deploy.md.

FROM python:3.11-slim AS build
WORKDIR /src
# Only what the package needs (.dockerignore keeps tests, bench, .git and any .venv out).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY digests ./digests
RUN python -m venv /opt/digestbot \
 && /opt/digestbot/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/digestbot/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin digestbot \
 && mkdir -p /data /config \
 && chown digestbot:digestbot /data
COPY --from=build /opt/digestbot /opt/digestbot
ENV PATH=/opt/digestbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIGESTBOT_DATABASE_URL=sqlite:////data/digest.db
USER digestbot
WORKDIR /data
VOLUME ["/data"]
# The metrics endpoint's default port, when server.enabled is set (server.host: 0.0.0.0 to reach it).
EXPOSE 8080
# Healthy: the database answers, this container's `digestbot run` beats, no channel is stuck.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 CMD ["digestbot", "health"]
CMD ["digestbot", "run"]
