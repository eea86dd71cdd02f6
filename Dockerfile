# One image for the three IDO services (payments, bridge, ledger); docker-compose.yml picks the
# service with its `command` (ido serve <name>, ido relay <name>, ido project, ido audit checkpoint).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ido \
    && install -d -o ido -m 0700 /var/lib/ido/checkpoints

USER ido
EXPOSE 8001 8002 8003
CMD ["ido", "serve", "ledger"]
