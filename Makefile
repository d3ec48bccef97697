# The two set-up commands: `make demo` and `make test`. Everything is installed into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Real npm clients (sigstore-js's CLI) that interop tests drive, pinned by interop/package-lock.json.
NPM_STAMP := interop/node_modules/.installed-stamp

.PHONY: install test demo bench conformance clean

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

install: $(STAMP) $(NPM_STAMP)

test: install
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: install
	@# wrk (Debian) drives the HTTP load; a Python client would measure itself instead.
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the HTTP benchmarks fall back or skip"
	$(PY) -m compileall -q src/sealtrail
	@# About 8 minutes; BENCH picks some (e.g. BENCH="sign-latency imports --quick").
	@# Exits non-zero when a start-up import budget is exceeded.
	$(PY) benchmarks/run_all.py $(BENCH)

conformance: install
	$(PY) ../shared/tools/conformance_runner.py cli --entrypoint $(VENV)/bin/sealtrail-conformance

clean:
	rm -rf $(VENV) build dist src/*.egg-info .bench
