# Set-up and the two README commands. Everything installs into .venv from scratch.
#   make run   - install, then the main job: sweep + report on the bundled inputs -> results/
#   make test  - install, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= results
PYTEST_ARGS ?= -n 2

.PHONY: install system-deps run test bench clean

# torch first, pinned to one version. Which build comes is pip's choice from its configured
# indexes: the CPU-only one needs PyTorch's CPU index or a local CPU wheel (README, Set-up).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(STAMP)

# Debian's Chromium: the report tests load the HTML page in a real headless browser.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: the browser test will be skipped"; fi; }

run: install
	$(BIN)/nmlab sweep --out $(OUT)
	$(BIN)/nmlab report $(OUT)

test: install system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) $(OUT)
