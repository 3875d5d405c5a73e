# Entry points. `make lab` tries the collection on local VMs; `make test` runs every test tier.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

APT_PACKAGES := qemu-system-x86 qemu-utils debootstrap openssh-client openssl git make rsync shellcheck
# CI runs these under software emulation. Measured in session 3 from fresh clones, two scenarios at
# a time (load 3-6): nodes 2341 s; the non-molecule tiers ~29 min at load 4-7. With default (~10 min
# idle), site (~18) and upgrade (~9) the sum came within minutes of CI's 90, so upgrade runs on
# demand: make molecule MOLECULE_SCENARIOS="upgrade ha default smoke" (or molecule-all). CI's whole
# `make test` took 4780 s with default site nodes (session 8); restore (one VM, the S3 path against
# moto) replaced default, whose cluster checks (default/tests/test_cluster.py) site's verify runs too.
MOLECULE_SCENARIOS ?= site nodes restore
# `make test` runs these beside the non-VM tiers (one VM, one core under TCG: the tiers keep the other),
# and the rest of MOLECULE_SCENARIOS after them. CI's `make test` took 5114 s of its 5400 (session 10)
# with every scenario after the tiers.
MOLECULE_BESIDE ?= restore
MOLECULE_ALL := smoke default ha site upgrade nodes restore
PLAYBOOKS := site.yml $(wildcard playbooks/*.yml)
# Wall seconds of each tier of `make test`, printed at its end (CI's budget is 90 minutes).
TIER_SECONDS := build/tier-seconds.txt
timed = start=$$(date +%s); $(1); mkdir -p build; echo "$(2) $$(( $$(date +%s) - start )) s" >> $(TIER_SECONDS)

.PHONY: help deps venv lint sanity unit integration reliability syntax checks molecule molecule-all test tier-seconds-reset lab lab-down bench build docs ee clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps:  ## Install the Debian packages the tests and the lab need (root, apt)
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

$(VENV)-s3/.installed: requirements-s3.txt
	python3 -m venv $(VENV)-s3
	$(VENV)-s3/bin/pip install -q --upgrade pip
	$(VENV)-s3/bin/pip install -q -r requirements-s3.txt
	touch $@

.collections/ansible_collections/dictamesh/k3s_gitops:
	mkdir -p .collections/ansible_collections/dictamesh
	ln -sfn ../../.. $@

venv: $(VENV)/.installed $(VENV)-s3/.installed .collections/ansible_collections/dictamesh/k3s_gitops  ## Python toolchain in .venv (moto, the S3 test server, in .venv-s3)

lint: venv  ## yamllint, ansible-lint (production profile), antsibull-docs lint of the plugin and role docs
	$(call timed,$(BIN)/yamllint --strict . && $(BIN)/ansible-lint --profile production \
	  && $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .,lint)

sanity: venv  ## ansible-test sanity in a temporary ansible_collections tree
	$(call timed,tests/sanity.sh,sanity)

# pytest-xdist, one worker per core: most tests wait on an ansible-playbook or a stand-in. Measured in
# session 10 on 2 cores beside a QEMU VM: unit 630 s (740 s alone, one process), integration 293 s
# (1120 s), reliability 157 s (500 s). PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS)

unit: venv  ## pytest unit tests
	$(call timed,$(PYTEST) tests/unit,unit)

integration: venv  ## module and stand-in tests through ansible-playbook
	$(call timed,$(PYTEST) tests/integration,integration)

reliability: venv  ## bad inputs, secret-leak scan, fault cases (figures: docs/RELIABILITY.md)
	$(call timed,$(PYTEST) tests/reliability,reliability)

syntax: venv  ## --syntax-check of every playbook
	$(call timed,for p in $(PLAYBOOKS); do $(BIN)/ansible-playbook --syntax-check -i inventories/prod $$p; done,syntax)

# CI keeps only the end of a failed run's output: a failed scenario repeats its failed tasks last.
molecule: deps venv  ## molecule scenarios on VMs (MOLECULE_SCENARIOS), one after another
	mkdir -p build
	for s in $(MOLECULE_SCENARIOS); do \
	  start=$$(date +%s); echo "== molecule $$s"; \
	  if ! $(BIN)/molecule test -s $$s 2>&1 | tee build/molecule-$$s.log; then \
	    echo "== molecule $$s failed after $$(( $$(date +%s) - start )) s; its failed tasks (build/molecule-$$s.log):"; \
	    sed 's/\x1b\[[0-9;]*m//g' build/molecule-$$s.log | awk '/TASK \[/ {task = $$0} \
	      /fatal: |failed: \[|UNREACHABLE!/ && !/ignoring/ {last = task "\n" $$0} \
	      wrapped {last = last "\n" $$0; wrapped = 0} / (FAILED|ERROR)( |$$)| E   / {last = last "\n" $$0} / (FAILED|ERROR)$$/ {wrapped = 1} \
	      END {print last}' | cut -c1-1200 | fold -w 200 | tail -n 16; \
	    exit 1; \
	  fi; \
	  echo "== molecule $$s passed in $$(( $$(date +%s) - start )) s"; \
	  mkdir -p build; echo "molecule $$s $$(( $$(date +%s) - start )) s" >> $(TIER_SECONDS); \
	done

molecule-all: deps venv  ## every molecule scenario (several hours under software emulation)
	$(MAKE) molecule MOLECULE_SCENARIOS="$(MOLECULE_ALL)"

checks: lint sanity unit integration reliability syntax  ## Every tier but molecule, one after another

# The scenarios of MOLECULE_BESIDE run in the background while `checks` runs; their output goes to
# build/molecule-beside.log and its failure summary is printed when they fail. Then the other scenarios.
test: tier-seconds-reset deps venv  ## Every test tier (what CI runs)
	mkdir -p build
	$(MAKE) --no-print-directory molecule MOLECULE_SCENARIOS="$(MOLECULE_BESIDE)" > build/molecule-beside.log 2>&1 & beside=$$!; \
	checks=0; $(MAKE) --no-print-directory checks || checks=$$?; \
	echo "== waiting for molecule $(MOLECULE_BESIDE), run beside the checks (build/molecule-beside.log)"; \
	if ! wait $$beside; then tail -n 17 build/molecule-beside.log; exit 1; fi; \
	echo "== molecule $(MOLECULE_BESIDE) passed beside the checks"; exit $$checks
	$(MAKE) --no-print-directory molecule MOLECULE_SCENARIOS="$(filter-out $(MOLECULE_BESIDE),$(MOLECULE_SCENARIOS))"
	@echo "== seconds per tier:"; cat $(TIER_SECONDS)

tier-seconds-reset:
	@rm -f $(TIER_SECONDS)

# make lab checks first (seconds, nothing booted) that the VMs will find K3S; offline: LAB_MIRROR=1 with a
# filled mirror, or LAB_STANDIN=1 for a try-out on the K3S test stand-in (docs/lab.md "Without internet").
lab: deps venv  ## Boot 1 server + 2 agents as local VMs and run site.yml against them (offline: docs/lab.md)
	tests/vmlab/lab.sh up

lab-down: venv  ## Remove the lab VMs, hosts.yml, the lab's generated secrets and kubeconfig
	tests/vmlab/lab.sh down

# make bench BENCH="scale argocd_sync" runs some of: site upgrade scale argocd_sync (default: all).
bench: EXTRA_APT_PACKAGES := podman runc
bench: deps venv  ## Benchmarks on the VM lab, podman containers and the Argo CD stand-in (root, 60-90 min): docs/BENCHMARKS.md
	$(PY) tests/bench/run.py $(BENCH)

build: venv  ## Build the collection tarball into build/
	mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .

# antsibull-docs wants its destination owned by the user and writable only by them. Offline, the
# links into docs.ansible.com (intersphinx) stay unresolved: Sphinx warns, the site still builds.
docs: venv  ## Documentation site (modules, filters, roles, docs/docsite guides) into build/docs/build/html
	rm -rf build/docs && mkdir -p build/docs && chmod 755 build/docs
	$(BIN)/antsibull-docs sphinx-init --use-current --dest-dir build/docs dictamesh.k3s_gitops
	mkdir -p build/docs/rst && chmod og-w build/docs/rst
	$(BIN)/antsibull-docs --config-file build/docs/antsibull-docs.cfg collection --use-current \
	  --cleanup everything --dest-dir build/docs/rst dictamesh.k3s_gitops
	$(BIN)/sphinx-build -M html build/docs/rst build/docs/build -c build/docs -q --keep-going
	@echo "docs: build/docs/build/html/index.html"

ee: venv  ## Execution environment build context in build/ee (then: podman build -t k3s-gitops-ee build/ee)
	rm -rf build/ee-collection build/ee && mkdir -p build/ee-collection
	$(BIN)/ansible-galaxy collection build --output-path build/ee-collection .
	mv build/ee-collection/dictamesh-k3s_gitops-*.tar.gz build/ee-collection/dictamesh-k3s_gitops.tar.gz
	$(BIN)/ansible-builder create -f meta/ee/execution-environment.yml -c build/ee --output-filename Containerfile

clean:  ## Remove the venv and build outputs
	rm -rf $(VENV) $(VENV)-s3 .collections build
