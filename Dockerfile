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

# Listen on all interfaces inside the container; keep the SQLite file on a volume.
ENV TOLLGATE_DATABASE_URL=sqlite:////data/tollgate.db
VOLUME ["/data"]
EXPOSE 8787

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status != 200)"

CMD ["tollgate", "serve", "--host", "0.0.0.0", "--port", "8787", "--config", "/app/config.toml"]
