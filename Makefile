# Routine tasks. The two a newcomer needs: `make demo` (run it) and `make test` (test it).
# With DATABASE_URL/REDIS_URL unset, embedded PostgreSQL 18 and Redis start under .local/.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)
SYSTEM_PACKAGES := chromium prometheus poppler-utils

.PHONY: help install demo test test-embedded lint format stop system-deps check-system-deps \
        migrate migrations bench lock clean image

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt -c constraints.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies

demo: install ## run the system with demo data until Ctrl-C (prints credentials and READY <url>)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	exec $(BIN)/python manage.py serve

test: install check-system-deps ## the whole suite on real PostgreSQL, Redis and Celery workers (ARGS=... for pytest)
	$(BIN)/pytest $(ARGS)

test-embedded: install check-system-deps ## the suite on embedded PostgreSQL 18 / Redis, ignoring DATABASE_URL/REDIS_URL
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest $(ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: install ## apply migrations
	$(BIN)/python manage.py migrate --noinput

migrations: install ## make migrations and check none is missing
	$(BIN)/python manage.py makemigrations
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: install ## run the benchmarks at full size and print their figures
	$(BIN)/python -m bench

stop: ## stop the embedded PostgreSQL and Redis started under .local/
	@test -x $(BIN)/python && $(BIN)/python -m jfintech.devservices stop || echo "nothing to stop"

system-deps: ## install what tests need beyond the venv (Debian: chromium, prometheus for promtool, poppler-utils for pdftotext)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES)

check-system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing promtool"; \
	command -v pdftotext >/dev/null || missing="$$missing pdftotext"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing system packages for:$$missing"; $(MAKE) system-deps; \
	  elif sudo -n true 2>/dev/null; then sudo $(MAKE) system-deps; \
	  else echo "missing:$$missing. Run: sudo make system-deps" >&2; exit 1; fi; \
	fi

lock: install ## re-resolve constraints.txt from the pinned requirements
	$(BIN)/python -m pip freeze --exclude-editable | grep -v pkg-resources > constraints.txt.new
	(echo '# Every transitive dependency, pinned: installs use `-c constraints.txt`. Regenerate with `make lock`.'; cat constraints.txt.new) > constraints.txt && rm constraints.txt.new

clean: stop ## remove the venv and local state
	rm -rf $(VENV) .local

# The image (Dockerfile) with buildah (Debian: apt-get install buildah). The base comes from a
# registry: pin it with PYTHON_IMAGE=...@sha256:<digest> (README, "The image"). Then a smoke run
# inside the image with throwaway settings: `manage.py check --deploy` and gunicorn's /livez.
IMAGE        ?= jfintech:dev
PYTHON_IMAGE ?= docker.io/library/python:3.11-slim-bookworm
SMOKE_ENV    := --env SECRET_KEY=smoke-only-not-a-secret-000000000000000000 \
                --env AUDIT_HMAC_KEY=smoke-only-not-a-secret-000000000000000000 \
                --env DATABASE_URL=postgres://smoke@127.0.0.1:1/smoke --env REDIS_URL=redis://127.0.0.1:1/0 \
                --env ALLOWED_HOSTS=127.0.0.1 --env PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

image: ## build the image with buildah and smoke it (check --deploy, /livez); PYTHON_IMAGE=... to pin the base
	@command -v buildah >/dev/null || { echo "buildah is missing (Debian: apt-get install buildah)" >&2; exit 1; }
	buildah build --layers --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -t $(IMAGE) .
	set -e; ctr=$$(buildah from $(IMAGE)); trap 'buildah rm $$ctr >/dev/null' EXIT; \
	buildah run $(SMOKE_ENV) $$ctr -- python manage.py check --deploy --fail-level ERROR; \
	buildah run $(SMOKE_ENV) $$ctr -- sh -c 'mkdir -p /tmp/prometheus; \
	  gunicorn config.wsgi -c config/gunicorn.conf.py --bind 127.0.0.1:8000 & \
	  for i in $$(seq 30); do python -c "import urllib.request as u; \
	    print(u.urlopen(\"http://127.0.0.1:8000/livez\", timeout=2).read().decode())" && ok=1 && break; \
	    sleep 1; done; kill $$!; test -n "$$ok"'
