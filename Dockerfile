FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md config.toml ./
COPY proxy ./proxy
COPY pricing ./pricing
RUN pip install . && rm -rf /root/.cache

# The server runs as its own user, which owns /data. Created before VOLUME, so that a new named volume
# starts with that owner; a folder bind-mounted at /data must be writable by uid 10001.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin tollgate \
    && mkdir -p /data \
    && chown tollgate:tollgate /data

# Listen on all interfaces inside the container. The SQLite file and the journal both live on the volume:
# the journal holds the records answered while the database was away, and must outlive the container.
ENV TOLLGATE_DATABASE_URL=sqlite:////data/tollgate.db \
    TOLLGATE_JOURNAL_DIR=/data/tollgate-journal
VOLUME ["/data"]
EXPOSE 8787
USER tollgate

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status != 200)"

CMD ["tollgate", "serve", "--host", "0.0.0.0", "--port", "8787", "--config", "/app/config.toml"]
