# Routine tasks. The two a newcomer needs: `make demo` (run it) and `make test` (test it).
# With DATABASE_URL/REDIS_URL unset, embedded PostgreSQL 18 and Redis start under .local/.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)
SYSTEM_PACKAGES := chromium prometheus poppler-utils

.PHONY: help install demo test test-embedded lint format stop system-deps check-system-deps \
        migrate migrations bench lock clean image image-deps base-image

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

# The image (Dockerfile) with buildah, then a smoke run inside it with throwaway settings:
# `manage.py check --deploy` and gunicorn's /livez (README, "The image"). The base defaults to the
# Dockerfile's digest-pinned one; where no container registry is reachable, `make base-image` makes
# one from the Debian mirror and `make image PYTHON_IMAGE=$(BASE_IMAGE)` builds on it.
# BUILDAH_ISOLATION=chroot (no OCI runtime needed; RUN steps share the host's network, so apt and pip
# inside the build reach their servers as the host does) and STORAGE_DRIVER (vfs where overlay
# mounts fail) are buildah's own variables, passed through.
IMAGE             ?= jfintech:dev
PYTHON_IMAGE      ?= $(shell sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
BASE_IMAGE        ?= localhost/jfintech-base:bookworm
DEBIAN_MIRROR     ?= http://deb.debian.org/debian
# CAs this machine trusts beyond Debian's (e.g. a TLS-inspecting egress proxy's): the local base
# trusts them too, or pip inside the build cannot verify PyPI. EXTRA_CA= for none.
EXTRA_CA          ?= $(wildcard /usr/local/share/ca-certificates/*.crt)
BASE_ROOTFS       := .local/base-rootfs
IMAGE_PACKAGES    := buildah debootstrap
export BUILDAH_ISOLATION ?= chroot
SMOKE_ENV    := --env SECRET_KEY=smoke-only-not-a-secret-000000000000000000 \
                --env AUDIT_HMAC_KEY=smoke-only-not-a-secret-000000000000000000 \
                --env DATABASE_URL=postgres://smoke@127.0.0.1:1/smoke --env REDIS_URL=redis://127.0.0.1:1/0 \
                --env ALLOWED_HOSTS=127.0.0.1 --env PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
# GET /livez over gunicorn's unix socket: chroot isolation shares the host's network, where a TCP
# port may be taken (or answered by another server); a socket in the container's /tmp cannot be.
SMOKE_LIVEZ  := python -c "import http.client as h, socket; c = h.HTTPConnection(\"127.0.0.1\", timeout=2); \
                c.sock = socket.socket(socket.AF_UNIX); c.sock.connect(\"/tmp/smoke.sock\"); \
                c.request(\"GET\", \"/livez\"); r = c.getresponse(); print(r.status, r.read().decode()); \
                assert r.status == 200"

image-deps: ## install what `make image` and `make base-image` need (Debian: buildah, debootstrap)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(IMAGE_PACKAGES)

image: ## build the image with buildah and smoke it (check --deploy, /livez); PYTHON_IMAGE=... for another base
	@command -v buildah >/dev/null || { echo "buildah is missing: make image-deps" >&2; exit 1; }
	@start=$$(date +%s); \
	buildah build --layers --network host --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -t $(IMAGE) . && \
	echo "image $(IMAGE) built in $$(( $$(date +%s) - start )) s, $$(buildah images --format '{{.Size}}' $(IMAGE))"
	set -e; ctr=$$(buildah from $(IMAGE)); trap 'buildah rm $$ctr >/dev/null' EXIT; \
	buildah run $(SMOKE_ENV) $$ctr -- sh -c 'set -e; mkdir -p /tmp/prometheus; \
	  python manage.py check --deploy --fail-level ERROR; \
	  gunicorn config.wsgi -c config/gunicorn.conf.py --bind unix:/tmp/smoke.sock 2>/tmp/gunicorn.log & \
	  for i in $$(seq 30); do $(SMOKE_LIVEZ) && ok=1 && break; sleep 1; done; \
	  kill $$!; wait $$! || true; cat /tmp/gunicorn.log; test -n "$$ok"; \
	  if grep "\[ERROR\]" /tmp/gunicorn.log; then echo "gunicorn logged errors" >&2; exit 1; fi'
	@echo "smoke passed: check --deploy and /livez in $(IMAGE)"

# Debian bookworm's python3 is 3.11, as the official base's. Shaped like python:3.11-slim: `python`
# on PATH at /usr/local/bin, venv and pip, ca-certificates, LANG=C.UTF-8, the same PATH.
base-image: ## a base from the Debian mirror with debootstrap (no registry): $(BASE_IMAGE); needs root
	@command -v debootstrap >/dev/null && command -v buildah >/dev/null || { echo "make image-deps first" >&2; exit 1; }
	rm -rf $(BASE_ROOTFS)
	debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
	  bookworm $(BASE_ROOTFS) $(DEBIAN_MIRROR)
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
	  $(DEBIAN_MIRROR) $(DEBIAN_MIRROR) $(DEBIAN_MIRROR) > $(BASE_ROOTFS)/etc/apt/sources.list
	ln -s /usr/bin/python3 $(BASE_ROOTFS)/usr/local/bin/python
	$(if $(EXTRA_CA),cp $(EXTRA_CA) $(BASE_ROOTFS)/usr/local/share/ca-certificates/ && \
	  chroot $(BASE_ROOTFS) update-ca-certificates)
	rm -rf $(BASE_ROOTFS)/var/cache/apt/archives/*.deb $(BASE_ROOTFS)/var/lib/apt/lists/*
	set -e; ctr=$$(buildah from scratch); trap 'buildah rm $$ctr >/dev/null' EXIT; \
	buildah copy $$ctr $(BASE_ROOTFS) /; \
	buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	  --env LANG=C.UTF-8 --cmd python $$ctr; \
	buildah commit $$ctr $(BASE_IMAGE)
	rm -rf $(BASE_ROOTFS)
