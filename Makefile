# The two set-up commands: `make demo` and `make test`. Everything is installed into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Real npm clients (sigstore-js's CLI) that interop tests drive, pinned by interop/package-lock.json.
# Only `make test` needs them, so only it needs npm; `demo`, `bench` and `conformance` do not.
NPM_STAMP := interop/node_modules/.installed-stamp
# The sigstore-conformance runner is not part of the repository: it is in the shared folder
# beside it (../shared), found from this Makefile's own place so that neither the directory
# make runs in nor a relative path decides; set CONFORMANCE_RUNNER to use another copy.
REPO_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
CONFORMANCE_RUNNER ?= $(abspath $(REPO_DIR)/../shared/tools/conformance_runner.py)

.PHONY: install install-python test demo bench conformance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,test]'
	@# An editable install compiles nothing; without bytecode every CLI start recompiles sources.
	$(PY) -m compileall -q src/sealtrail
	touch $(STAMP)

$(NPM_STAMP): interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

install-python: $(STAMP)

install: $(STAMP) $(NPM_STAMP)

test: install
	@# PostgreSQL (Debian) for the PostgreSQL storage tests; the tests start their own
	@# throwaway cluster, so the system service is not started (policy-rc.d refuses it).
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		apt-get update -qq; \
		test -e /usr/sbin/policy-rc.d || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
			chmod +x /usr/sbin/policy-rc.d; added=1; }; \
		apt-get install -y -qq postgresql; status=$$?; \
		test -z "$$added" || rm -f /usr/sbin/policy-rc.d; exit $$status; }
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

demo: install-python
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: install-python
	@# wrk (Debian) drives the HTTP load; a Python client would measure itself instead.
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the HTTP benchmarks fall back or skip"
	$(PY) -m compileall -q src/sealtrail
	@# About 9 minutes; BENCH picks some (e.g. BENCH="sign-latency imports --quick").
	@# Exits non-zero when a start-up import budget is exceeded.
	$(PY) benchmarks/run_all.py $(BENCH)

conformance:
	@# Checked first, so that a clone without the runner stops at once, before any install.
	@test -f '$(CONFORMANCE_RUNNER)' || { echo "make conformance: no sigstore-conformance \
	runner at $(CONFORMANCE_RUNNER) (it lives in the shared folder beside the repository); \
	set CONFORMANCE_RUNNER=/path/to/conformance_runner.py" >&2; exit 2; }
	@$(MAKE) --no-print-directory install-python
	@# The cases are the repository's own copy of the sample (what the test suite runs).
	$(PY) '$(CONFORMANCE_RUNNER)' --cases tests/vectors/conformance cli \
		--entrypoint $(VENV)/bin/sealtrail-conformance

clean:
	rm -rf $(VENV) build dist src/*.egg-info .bench
