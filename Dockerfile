# One image for every process (web, workers, beat, migrations). The chart passes each process's
# command as `args`, so the ENTRYPOINT below (tini) stays PID 1. Build: `make image` (buildah) or
# `docker build .`. helm/tests/test_image.py runs this file's manage.py steps with the ENV it
# sets, so a build step that needs a variable nobody sets fails `make test`, not the build.
#
# The base, pinned by digest: a tag can be re-pointed, a digest cannot (a wrong or withdrawn digest
# fails the pull, loudly). The Makefile reads this default. To bump it (README, "The image"):
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/python:3.11-slim-bookworm
#   (or: docker buildx imagetools inspect python:3.11-slim-bookworm), then edit the line below.
# Any Debian-based image with python 3.11, venv and pip as `python` fits: `make base-image` makes
# one with debootstrap where no registry is reachable (make image PYTHON_IMAGE=localhost/...).
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- builder: compilers and pip, never shipped ----------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

# --- runtime: the venv, the code, tini ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tini (Debian's) as PID 1: it forwards SIGTERM to Celery/gunicorn, which then shut down warm
# (or, for prefork workers, with the chart's soft shutdown) and reaps zombies. Not `tini -g`:
# SIGTERM to the whole group would kill Celery's pool children in the middle of a task.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Owned by root and not writable by the app user (10001): the code cannot be changed at run time.
COPY . .
# collectstatic imports the production settings, which refuse to start without these. They are
# build-only placeholders, set for this step alone (not ENV, so no process ever runs with them);
# collectstatic opens no connection and signs nothing.
RUN SECRET_KEY=build-only-not-a-secret-collectstatic-000000 \
    AUDIT_HMAC_KEY=build-only-not-a-secret-collectstatic-000000 \
    DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --noinput
USER 10001:10001
# web (gunicorn, /metrics too), worker metrics, beat's platform metrics: the chart's defaults.
EXPOSE 8000 9808 9809
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py"]
