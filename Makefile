# The two commands: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
PACKAGING := setup.cfg pyproject.toml constraints.txt

.PHONY: demo test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when the packaging files change.
$(VENV)/.installed: $(PY) $(PACKAGING)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: $(PY) $(PACKAGING)
	$(PIP_INSTALL) -e .[test]
	touch $@

install: $(VENV)/.installed

# Until the joint experiment lands, the demo runs the largest piece that exists: it writes the
# synthetic SYSU-MM01-layout dataset and reads it back through the SYSU-MM01 loader.
DEMO_DATA ?= data/demo-synthetic
demo: $(VENV)/.installed
	$(VENV)/bin/vireid data synth --root $(DEMO_DATA) --num-ids 60 --seed 0
	$(VENV)/bin/vireid data info --dataset synthetic --root $(DEMO_DATA)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
