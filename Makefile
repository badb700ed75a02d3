# Every target works on a fresh machine with Python 3.11, git and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck e2e chaos bench lock lock-upgrade wheelhouse clean

# The runtime packages come at the versions constraints.txt locks (what the image
# installs), so the suite tests those and a new upstream release changes nothing here
# until `make lock`; the hashes are the image's check (pip refuses hashes for an editable).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	sed -e '/--hash=/d' -e 's/ *\\$$//' constraints.txt > $(VENV)/constraints.pins
	$(BIN)/pip install --quiet -c $(VENV)/constraints.pins -e '.[container,test,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Parallel workers (JOBS): most tests wait on subprocesses and sockets, not on the CPU.
JOBS ?= 4
test: $(STAMP)
	$(BIN)/pytest -q -m "not e2e" -n $(JOBS)

# The real OpenClaw gateway and other slow peers; installs are cached in ~/.cache/skillsyncd-e2e.
# Two workers: most of the time is a gateway booting or a peer answering, not our CPU.
E2E_JOBS ?= 2
e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e -n $(E2E_JOBS)

# Crash-consistency harness: SIGKILL at random and chosen instants (TRIALS=500 by default).
TRIALS ?= 500
chaos: $(STAMP)
	$(BIN)/python tests/chaos/run.py --trials $(TRIALS)

# Benchmarks against git's own CLI, both publish modes (about an hour on 2 cores, 30,000 skills
# included): prints each target met / not met, writes bench/results.json and regenerates the
# README's table from it (QUICK=1: ~1 min).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) --out bench/results.json --readme

# The image's lock (constraints.txt): every package the image installs, pinned at the version
# this venv holds, with PyPI's hashes for each file. Run after changing a dependency (or
# `pip install -U` in the venv) and after the tests pass; needs PyPI.
lock: $(STAMP)
	$(BIN)/python -m skillsyncd.container.lock > $(VENV)/lock.in
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --strip-extras \
	    --output-file constraints.txt $(VENV)/lock.in

# The lock's files, downloaded once for tests/e2e/test_lock_install.py (which stays offline).
wheelhouse: $(STAMP)
	$(BIN)/pip download --quiet --only-binary :all: --require-hashes -r constraints.txt -d $(VENV)/wheelhouse

# Newer releases: install the newest versions pyproject.toml allows, then lock those.
lock-upgrade: $(STAMP)
	$(BIN)/pip install --quiet --upgrade -e '.[container,test,dev]'
	$(MAKE) lock

lint: $(STAMP)
	$(BIN)/ruff check skillsyncd tests
	$(BIN)/mypy skillsyncd

clean:
	rm -rf $(VENV) .demo build *.egg-info
