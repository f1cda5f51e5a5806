#!/bin/sh
# Start the web server (default) or the scheduler; migrations run first.
set -e
python manage.py migrate --noinput
python manage.py createcachetable
case "${1:-web}" in
  web)
    exec gunicorn invest_alchemy.wsgi:application \
      --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${GUNICORN_WORKERS:-2}" \
      --threads "${GUNICORN_THREADS:-4}" \
      --timeout "${GUNICORN_TIMEOUT:-60}" \
      --access-logfile -
    ;;
  worker)
    python manage.py setup_schedules
    exec python manage.py qcluster
    ;;
  *)
    exec "$@"
    ;;
esac
