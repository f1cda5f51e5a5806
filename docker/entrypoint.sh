#!/bin/sh
# Start the web server (default) or the scheduler; migrations run first.
#   docker/entrypoint.sh web       gunicorn, configured by docker/gunicorn.conf.py
#   docker/entrypoint.sh worker    the daily schedule, then django-q2's qcluster
#   docker/entrypoint.sh CMD ...   anything else, e.g. python manage.py shell
set -e
cd "$(dirname "$0")/.."

# web and worker start together: dblock lets one container at a time do this.
python docker/dblock.py python manage.py migrate --noinput
python docker/dblock.py python manage.py createcachetable

case "${1:-web}" in
  web)
    # The image collects static files when it is built. A checkout mounted
    # over /app, or this script run on a checkout, has no manifest yet.
    if [ ! -f staticfiles/staticfiles.json ]; then
      echo "entrypoint: no staticfiles/staticfiles.json, collecting static files"
      python docker/dblock.py python manage.py collectstatic --noinput --verbosity 0
    fi
    exec gunicorn -c docker/gunicorn.conf.py invest_alchemy.wsgi:application
    ;;
  worker)
    # Under the same lock: two workers starting at once must not both create it.
    python docker/dblock.py python manage.py setup_schedules
    exec python manage.py qcluster
    ;;
  *)
    exec "$@"
    ;;
esac
