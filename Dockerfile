# ITB Tracker production image: web (gunicorn, the default command), Celery worker and beat.
# docker-compose.yml runs it with PostgreSQL and Redis; see the variables listed there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=itb_tracker.settings \
    ITB_VAR_DIR=/app/var \
    PORT=8000

WORKDIR /app

# Runtime dependencies only, every version pinned (transitive pins in constraints.txt).
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

RUN groupadd --system --gid 10001 itb \
    && useradd --system --uid 10001 --gid itb --create-home --home-dir /home/itb --shell /usr/sbin/nologin itb

COPY . .

# Static files are collected (hashed and compressed, served by whitenoise) at build time.
# The SECRET_KEY here only lets the settings load: nothing is signed during the build.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret DEBUG=false \
        python manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p /app/var \
    && chown itb:itb /app/var

USER itb
EXPOSE 8000

# gunicorn binds 0.0.0.0:$PORT. Access logs stay off: URLs carry record ids.
CMD ["gunicorn", "itb_tracker.wsgi:application", "--workers", "3", "--timeout", "60", "--worker-tmp-dir", "/dev/shm", "--no-control-socket"]
