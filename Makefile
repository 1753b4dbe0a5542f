# archive-dr: two commands on a fresh machine.
#   make lab   -- lab up -> secrets -> site.yml -> smoke check -> seed -> DR drill (prints the report path)
#   make test  -- lint, unit tests, Molecule scenarios (brings its own lab up and down)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: deps venv lab lab-up lab-down smoke lint unit molecule test clean

deps:
	@scripts/install-deps.sh

$(VENV)/.stamp: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: deps $(VENV)/.stamp

lab-up: deps venv
	archive-dr lab up
	archive-dr secrets

lab: lab-up
	ansible-playbook playbooks/site.yml
	archive-dr lab seed
	archive-dr lab smoke
	archive-dr drill --scenario host-lost

lab-down: venv
	archive-dr lab down

lint: venv
	yamllint -s .
	ansible-lint --profile production
	lint-imports

unit: deps venv
	archive-dr lab keys
	pytest -q tests/unit tests/integration tests/host

molecule: deps venv
	archive-dr lab images
	cd roles/baseline && molecule test
	cd roles/storage && molecule test
	molecule test -s two-site

test: lint unit molecule

clean: lab-down
	rm -rf $(VENV)
