# The two commands: `make demo` and `make test`. Each creates .venv when it is missing.
# FAISS=cpu (default) or FAISS=gpu picks the faiss build, e.g. `make test FAISS=gpu` on a CUDA machine; the other
# build is uninstalled first, so the two (which hold the same `faiss` package) never sit side by side.
PYTHON ?= python3
VENV ?= .venv
FAISS ?= cpu
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
PACKAGING := setup.cfg pyproject.toml constraints.txt
comma := ,
$(if $(filter-out cpu gpu,$(FAISS)),$(error FAISS must be cpu or gpu, got '$(FAISS)'))
OTHER_FAISS := $(if $(filter gpu,$(FAISS)),cpu,gpu)
FAISS_PACKAGE_cpu := faiss-cpu
FAISS_PACKAGE_gpu := faiss-gpu-cu12

.PHONY: demo test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files, one per faiss build: reinstall only when the packaging files or FAISS change.
# $(1): the extras to install beside the faiss build.
define install_toolkit
	rm -f $(VENV)/.installed-$(OTHER_FAISS) $(VENV)/.installed-test-$(OTHER_FAISS)
	$(PY) -m pip uninstall --disable-pip-version-check -y -qq $(FAISS_PACKAGE_$(OTHER_FAISS))
	$(PIP_INSTALL) -e '.[$(FAISS)$(1)]'
	touch $@
endef

$(VENV)/.installed-$(FAISS): $(PY) $(PACKAGING)
	$(call install_toolkit,)

$(VENV)/.installed-test-$(FAISS): $(PY) $(PACKAGING)
	$(call install_toolkit,$(comma)test)

install: $(VENV)/.installed-$(FAISS)

# The joint experiment on the embedded synthetic dataset, on the CPU: generate the data, train a small
# translator, translate, train the upper bound, the joint method and cluster_contrast (no cross-modal step), two
# stages each, print the results table with chance. experiments/configs/demo_methods.yaml runs every method.
demo: $(VENV)/.installed-$(FAISS)
	$(PY) -m experiments run experiments/configs/demo.yaml

test: $(VENV)/.installed-test-$(FAISS)
	$(PY) -m pytest -q

bench: $(VENV)/.installed-$(FAISS)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
