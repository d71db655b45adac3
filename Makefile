# Landslide Mapper developer tasks. Fresh Debian 12 (as root, or a user with sudo):  make demo  /  make test
# Every target works from any checkout folder name: the package name comes from the link
# .build/import/landslide_mapper -> repository root, which is put first on PYTHONPATH.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PLUGIN       := landslide_mapper
APT_PACKAGES := qgis python3-qgis qgis-providers python3-rasterio gdal-bin xvfb python3-venv
SYSTEM_PY    := /usr/bin/python3
VENV         := .venv
VENV_PY      := $(VENV)/bin/python
STAMP        := $(VENV)/.requirements.stamp
IMPORT_DIR   := .build/import
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

QGIS_PROCESS := /usr/bin/qgis_process.bin
# The profile `make install-plugin` installs into; override e.g. QGIS_PROFILE=/tmp/qgis/profiles/default.
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
# QGIS_CUSTOM_CONFIG_PATH is the folder that holds profiles/<name>/
QGIS_CONFIG_ROOT = $(abspath $(QGIS_PROFILE)/../..)
# Environment for headless qgis_process: no display, the venv's torch/smp on Python's path.
QGIS_PROCESS_ENV = QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH="$(QGIS_CONFIG_ROOT)" \
	PYTHONPATH="$$($(VENV_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

RUN_ENV = QT_QPA_PLATFORM=offscreen PYTHONPATH="$(CURDIR)/$(IMPORT_DIR)$${PYTHONPATH:+:$$PYTHONPATH}"
PYTEST_ARGS ?=
BENCH ?=

.PHONY: help setup apt-packages import-link test demo demo-geology demo-iburi bench styles models screenshots install-plugin zip clean distclean

help:
	@echo "make setup           install Debian packages (if missing), .venv and Python packages (if changed)"
	@echo "make test            run the test suite (tests/), headless"
	@echo "make demo            synthetic event -> trained model -> landslide map -> evaluation, in demo_out/"
	@echo "make demo-geology    simulated bedrock/wetland/ravine scene -> multi-class U-Net -> class map -> per-class scores"
	@echo "make demo-iburi      the real 2018 Iburi scene mapped with a model trained on a simulated event"
	@echo "make bench           timing benchmarks, in bench_out/"
	@echo "make styles          regenerate ui/styles/*.qml from scripts/make_styles.py"
	@echo "make models          regenerate the shipped Processing models from scripts/make_models.py"
	@echo "make screenshots     the docks and the whole QGIS window with demo content, into docs/screenshots/ (Xvfb)"
	@echo "make install-plugin  link this checkout into QGIS_PROFILE (default: $(QGIS_PROFILE)) and enable it"
	@echo "make zip             build $(PLUGIN).zip for the QGIS plugin manager"
	@echo "make clean           remove build outputs and caches (keeps .venv); make distclean also removes .venv"

setup: apt-packages $(STAMP) import-link

apt-packages:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "Installing Debian packages: $(APT_PACKAGES)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi

$(VENV_PY): | apt-packages
	$(SYSTEM_PY) -m venv --system-site-packages $(VENV)

# Reinstalled only when requirements.txt is newer than the stamp.
$(STAMP): requirements.txt requirements-nodeps.txt | $(VENV_PY)
	@echo "Installing PyTorch (with its CUDA libraries) and friends into $(VENV): it grows to about 5.7 GB;"
	@echo "keep about 10 GB free. pip shows the progress of each download."
	$(VENV_PY) -m pip install --progress-bar on -r requirements.txt
	$(VENV_PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $@

import-link:
	@mkdir -p $(IMPORT_DIR)
	@[ "$$(readlink $(IMPORT_DIR)/$(PLUGIN) 2>/dev/null)" = "../.." ] || ln -sfn ../.. $(IMPORT_DIR)/$(PLUGIN)

# -P: do not put the working directory on sys.path (the repo root would shadow names like `core`, `models`).
# pytest exits non-zero on failures and with 5 when no test was collected; make fails on both.
test: setup
	$(RUN_ENV) $(VENV_PY) -P -m pytest -p no:cacheprovider tests $(PYTEST_ARGS)

demo: setup
	$(RUN_ENV) $(VENV_PY) scripts/demo.py --out demo_out

# Multi-class geological mapping (bedrock, wetlands, sharp/smooth ravines, landslides) on a simulated scene.
demo-geology: setup
	$(RUN_ENV) $(VENV_PY) scripts/demo_geology.py --out demo_out/geology

# The real Iburi 2018 scene from ../shared/data, mapped with a model trained on a simulated event.
demo-iburi: setup
	$(RUN_ENV) $(VENV_PY) scripts/iburi_demo.py --out demo_out/iburi

bench: setup
	$(RUN_ENV) $(VENV_PY) scripts/bench.py $(BENCH)

styles: setup
	$(RUN_ENV) $(VENV_PY) scripts/make_styles.py

models: setup
	$(RUN_ENV) $(VENV_PY) scripts/make_models.py

# A real X server (Xvfb), not offscreen: the docks are drawn as QGIS draws them on a desktop. First the panels cut
# out, then the whole QGIS window at 1920×1080 (the real QGIS, a throw-away profile with this checkout installed).
SHOTS_DIR := .build/screenshots
screenshots: setup import-link
	PYTHONPATH="$(CURDIR)/$(IMPORT_DIR)$${PYTHONPATH:+:$$PYTHONPATH}" QT_QPA_PLATFORM=xcb \
		xvfb-run -a -s "-screen 0 1920x1200x24" $(VENV_PY) scripts/screenshots.py --out docs/screenshots
	rm -rf "$(SHOTS_DIR)" && mkdir -p "$(SHOTS_DIR)/profile/profiles/default/python/plugins"
	ln -sfn "$(CURDIR)" "$(SHOTS_DIR)/profile/profiles/default/python/plugins/$(PLUGIN)"
	$(SYSTEM_PY) scripts/enable_plugin.py "$(SHOTS_DIR)/profile/profiles/default" $(PLUGIN)
	QGIS_CUSTOM_CONFIG_PATH="$(CURDIR)/$(SHOTS_DIR)/profile" LANDSLIDE_MAPPER_SCREENSHOTS="$(CURDIR)/docs/screenshots" \
		LANDSLIDE_MAPPER_WORK="$(CURDIR)/$(SHOTS_DIR)/work" \
		PYTHONPATH="$$($(VENV_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
		xvfb-run -a -s "-screen 0 1920x1080x24" qgis --nologo --noversioncheck --code scripts/desktop_screenshots.py \
		|| { cat docs/screenshots/desktop_screenshots.log >&2; exit 1; }
	@rm -f docs/screenshots/desktop_screenshots.log

install-plugin: setup
	mkdir -p "$(QGIS_PROFILE)/python/plugins"
	@target="$(QGIS_PROFILE)/python/plugins/$(PLUGIN)"; \
	if [ -e "$$target" ] && [ ! -L "$$target" ]; then \
		echo "$$target exists and is not a link; remove it first" >&2; exit 1; fi; \
	ln -sfn "$(CURDIR)" "$$target"; echo "$$target -> $(CURDIR)"
	@if [ "$(notdir $(QGIS_PROFILE))" = default ]; then \
		out="$$($(QGIS_PROCESS_ENV) $(QGIS_PROCESS) plugins enable $(PLUGIN) 2>&1)" \
			&& echo "$(PLUGIN) enabled in $(QGIS_PROFILE)" \
			|| { grep -q "already enabled" <<<"$$out" && echo "$(PLUGIN) was already enabled"; } \
			|| { echo "$$out" >&2; exit 1; }; \
	else \
		$(SYSTEM_PY) scripts/enable_plugin.py "$(QGIS_PROFILE)" $(PLUGIN); \
	fi

zip:
	$(SYSTEM_PY) scripts/build_zip.py --out $(PLUGIN).zip

clean:
	rm -rf .build demo_out bench_out $(PLUGIN).zip .pytest_cache .qgis-settings
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
