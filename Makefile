# The README's two commands: `make run` (the portal on SQLite with demo data) and
# `make test` (lint, checks, and the suite on SQLite and on PostgreSQL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/lcs_portal
# Where `make run` listens; run_portal makes it the address links in mails, webhook
# events and calendar feeds use too (PORTAL_BASE_URL), unless that is set or BIND is 0.0.0.0.
BIND ?= 127.0.0.1:8000

.PHONY: screenshots run test test-sqlite test-postgres lint check system-deps postgres clean bench \
	oidc-provider \
	cluster test-cluster soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

var/secret-key:
	mkdir -p var
	$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

run: $(STAMP) var/secret-key
	SECRET_KEY=$$(cat var/secret-key) PORTAL_TLS=0 $(BIN)/python manage.py migrate --no-input
	SECRET_KEY=$$(cat var/secret-key) PORTAL_TLS=0 $(BIN)/python manage.py collectstatic --no-input -v0
	SECRET_KEY=$$(cat var/secret-key) PORTAL_TLS=0 $(BIN)/python manage.py seed_demo
	SECRET_KEY=$$(cat var/secret-key) PORTAL_TLS=0 PORTAL_WEBHOOKS_ALLOW_PRIVATE=1 exec $(BIN)/python manage.py run_portal --bind $(BIND)

# Two portal hosts behind nginx on this machine's PostgreSQL and Redis (docs/deploy.md);
# Ctrl-C stops everything. CLUSTER_ARGS="--help" shows the options.
cluster: $(STAMP) system-deps postgres var/secret-key
	SECRET_KEY=$$(cat var/secret-key) exec $(BIN)/python -m scripts.cluster $(CLUSTER_ARGS)

# The chaos soak (docs/reliability.md): the cluster on a PostgreSQL and a Redis of its
# own, simulated users, faults at random times, invariants checked at the end.
# SOAK_ARGS="--minutes 10 --seed 7"; 60 minutes by default.
soak: $(STAMP) system-deps postgres
	$(BIN)/python -m scripts.soak $(SOAK_ARGS)

system-deps:
	scripts/ensure-system-packages

postgres:
	scripts/ensure-postgres

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: $(STAMP)
	DJANGO_SETTINGS_MODULE=lcs_portal.settings_test $(BIN)/python manage.py check
	DJANGO_SETTINGS_MODULE=lcs_portal.settings_test $(BIN)/python manage.py makemigrations --check --dry-run

# The real OpenID provider of the single sign-on tests (tests/oidc/provider.mjs), installed
# with npm once and again only when its lock file changes.
OIDC_PROVIDER := tests/oidc/node_modules/.package-lock.json
$(OIDC_PROVIDER): tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

oidc-provider: $(OIDC_PROVIDER)

test-sqlite: $(STAMP) system-deps $(OIDC_PROVIDER)
	$(BIN)/pytest

test-postgres: $(STAMP) system-deps postgres $(OIDC_PROVIDER)
	DATABASE_URL=$(PG_URL) $(BIN)/pytest

# The multi-host tests alone (tests/cluster/); test-postgres runs them too.
test-cluster: $(STAMP) system-deps postgres
	DATABASE_URL=$(PG_URL) $(BIN)/pytest tests/cluster

test: lint check test-sqlite test-postgres

# Retake the README's screenshots (docs/screenshots/) in the browser tests.
screenshots: $(STAMP) system-deps
	PORTAL_SCREENSHOTS=1 $(BIN)/pytest tests/browser

# The benchmark (docs/performance.md): gunicorn with production settings on PostgreSQL,
# seeded scale data and wrk; not part of `make test`. BENCH_ARGS="pages" or "workers".
bench: $(STAMP) postgres
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles
