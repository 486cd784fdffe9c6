# One image for every process (web, workers, beat, migrations); the command differs (see helm/).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY . .
RUN useradd --uid 10001 --no-create-home app \
 && SECRET_KEY=build-only-collectstatic-xxxxxxxxxxxxxxxx DATABASE_URL=postgres://x@localhost/x \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput
USER 10001
EXPOSE 8000 9808
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py"]
