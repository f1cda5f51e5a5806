# One image for the web server and the scheduler.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# TA-Lib comes as a binary wheel with its C library inside: nothing to compile,
# and --only-binary makes the build fail rather than try to compile it.
COPY requirements.txt .
RUN pip install --only-binary=TA-Lib -r requirements.txt

COPY . .
# Static files are collected (hashed and compressed) once, here; the app user
# cannot write to /app except var/.
RUN useradd --create-home --uid 1000 app \
    && DEBUG=1 python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown -R app:app /app/var
USER app

EXPOSE 8000
# /healthz: 200 when the database answers and the signals are fresh (see
# invest_alchemy/health.py). The worker serves no HTTP: compose disables this
# check for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
