# Two commands set everything up on a fresh machine:
#   make run    installs what is needed into .venv and starts DocMind
#   make test   installs what is needed (including Debian's chromium) and runs the tests
VENV := .venv
PY := $(VENV)/bin/python
# Where pip finds torch. Empty: the default index (Linux gets the multi-GB CUDA build unless the CPU wheel is
# already on disk). For the small CPU build: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench system-deps clean package package-smoke

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, from TORCH_INDEX when set; an unpinned `torch` would pull another build.
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# chromium for the browser tests; npm for axe-core, which the accessibility audit installs (tests/ui/a11y.py)
system-deps:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	@command -v npm >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q npm; }
	# ip and unshare for the team-login test's network namespace (tests/ui/test_lan_login.py)
	@command -v ip >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q iproute2; }

run: $(VENV)/.installed
	@echo "DocMind is installed in $(VENV): its command is $(VENV)/bin/docmind (or run: . $(VENV)/bin/activate)"
	$(VENV)/bin/docmind

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q -p no:cacheprovider

# The desktop app: dist/DocMind (single file) and dist/DocMind-app (folder), built in a clean venv.
package:
	packaging/build.sh

# Smoke test of the BUILT single file (not the source tree): version, doctor, ingest, ask, serve, second launch.
package-smoke: $(VENV)/.installed
	DOCMIND_BINARY=dist/DocMind $(PY) -m pytest -q -p no:cacheprovider tests/packaging/smoke_binary.py

bench: $(VENV)/.installed
	for b in tests/benchmarks/bench_*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) build dist
