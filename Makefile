VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: test check proto bench demo install clean redis

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The bus tests start real redis-server processes (the Debian package): installed here when
# missing and run as root with apt (CI); otherwise say how, and those tests skip.
redis:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
		else \
			echo "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install redis-server)" \
				"to run the bus tests; they skip without it" >&2; \
		fi; \
	fi

test: $(STAMP) redis
	$(PY) -m pytest -q -p no:cacheprovider

check: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/mypy --strict src examples benchmarks

proto: $(STAMP)
	$(PY) -m dragonflybot.service.protogen

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

demo: $(STAMP)
	$(VENV)/bin/dragonflybot demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
