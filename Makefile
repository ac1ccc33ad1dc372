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

# The joint experiment on the embedded synthetic dataset, on the CPU: generate the data, train a small
# translator, translate, train the joint strategy and the per-modality baseline, print the results table.
demo: $(VENV)/.installed
	$(PY) -m experiments run experiments/configs/demo.yaml

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
