# cdnlake — quick start: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
UV := .tools/bin/uv
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install demo test lint bench soak audit clean

$(UV):
	@echo "uv $(UV_VERSION): installing into .tools"
	@$(PYTHON) -m venv .tools
	@.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installs exactly the versions in uv.lock (fails if the lock is out of date). Bytecode is compiled
# at install: with PYTHONDONTWRITEBYTECODE set, every Spark Python worker recompiled pandas (~8 s).
# One line instead of uv's list of ~200 packages.
$(VENV)/.installed: $(UV) pyproject.toml uv.lock Makefile
	@echo "Python packages: installing uv.lock into $(VENV) (the first time about 1.8 GB and a few minutes: pyspark is built from its source package)"
	@$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --quiet
	@touch $@

# Then the Spark/Delta jars (spark_jobs/jars.py): resolved once into ~/.ivy2.5.2 (about 700 MB the
# first time), one line here, Ivy's own output in ~/.ivy2.5.2/cdnlake-jars.log; then, once per JDK and
# jar set, the driver's class archive (spark_jobs/class_archive.py, about 40 s).
install: $(VENV)/.installed
	@$(VENV)/bin/python -m spark_jobs.session

demo: install
	$(VENV)/bin/cdnlake demo

# Two pytest workers (pytest-xdist), each test module whole on one of them: the suite's time is
# mostly JVM, Delta-commit and Prefect-server latency, which a second worker overlaps even on
# 2 cores. Each worker has its own SparkSession and Prefect test server. The slowest tests are
# listed at the end. TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= 2
test: install
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

# No `ruff format --check`: the code keeps short literals on one line (`# fmt: skip`), which the
# formatter would spread over 30% more lines; `ruff check` (line length 120, imports) is the rule.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy spark_jobs/raw_reader.py spark_jobs/arrow_parse.py spark_jobs/args.py cdnlake/settings.py reporting

# BENCH_ARGS="--scaling" adds 0.5M and 8M lines; "--full-run" times `cdnlake run`; "--rows N",
# "--driver-memory 2g" (bench/run.py --help).
BENCH_ARGS ?=
bench: install
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# Not part of `make test`: 7 generated days through the daily flow, then all 7 again; checks the
# tables are identical and prints the memory of the process tree after each date (bench/soak.py).
# SOAK_ARGS="--rows 50000" for a shorter run (default 200,000 lines a day).
SOAK_ARGS ?=
soak: install
	$(VENV)/bin/python bench/soak.py $(SOAK_ARGS)

# Known vulnerabilities in exactly the locked set (uv.lock, hashed), not in whatever the venv holds.
# AUDIT_IGNORE: vulnerability IDs accepted on purpose, each justified in README "Dependency audit".
# AUDIT_FLAGS=--allow-unaudited: packages the feed could not answer for warn instead of failing.
AUDIT_IGNORE :=
AUDIT_FLAGS ?=
audit: install
	@mkdir -p build
	$(UV) export --frozen --format requirements-txt --no-emit-project --quiet -o build/requirements.txt
	$(VENV)/bin/python .ci/audit.py build/requirements.txt $(foreach id,$(AUDIT_IGNORE),--ignore-vuln $(id)) $(AUDIT_FLAGS)

clean:
	rm -rf $(VENV) .tools data build .pytest_cache
