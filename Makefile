# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint typecheck imports pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build from the machine's wheel folder. Anything that asks
	# for an unpinned torch later is then already satisfied (no multi-GB CUDA download).
	$(BIN)/pip install --quiet torch==2.13.0
	# llama-cpp-python compiles from source the first time (about 6 minutes; pip caches it).
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e '.[local,dev,channels]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/personae serve

test: lint typecheck imports pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest

# The benchmark scenarios (docs/benchmarks.md), each printing its table; 10-15 minutes on 2 cores.
# gateway_overhead.py compares with the LiteLLM proxy when /tmp/litellm-venv has it (see there).
BENCH_SCRIPTS ?= gateway_overhead.py ws_streaming.py ws_idle.py routing_overhead.py \
	security_overhead.py observability_overhead.py moderation.py lorebook_scan.py load_cards.py \
	workers_scaling.py local_model.py

bench: $(STAMP)
	@for script in $(BENCH_SCRIPTS); do \
		echo "== bench/$$script"; \
		HF_HUB_OFFLINE=1 $(BIN)/python bench/$$script || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
