"""The import rules of the code base, checked on the source (ast) and in a process without PySpark.

- `spark_jobs/` imports no prefect, reportlab, boto3, flows or cdnlake: jobs run in Spark images
  and executors that need none of them.
- `reporting/` imports no pyspark: the report is built from small tables read with delta-rs.
- The settings, the CLI's parser, `cdnlake config` and `--help` work where PySpark cannot be
  imported (they start in a fraction of a second and run in images without Spark).
- No import cycles between the project's modules (function-level imports included: a lazy import
  hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cdnlake", "flows", "reporting", "spark_jobs")
FORBIDDEN = {
    "spark_jobs": ("prefect", "reportlab", "boto3", "botocore", "flows", "cdnlake", "reporting"),
    "reporting": ("pyspark", "py4j", "delta", "flows", "prefect"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    offenders = []
    for name, path in _modules().items():
        if name.split(".")[0] != package:
            continue
        for imported in sorted(_imports(path)):
            if imported.split(".")[0] in FORBIDDEN[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not offenders, "\n".join(sorted(set(offenders)))


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # `from pkg import mod` names a module; `from mod import function` names its module.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported not in PACKAGES:
                targets.add(imported)
        graph[name] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _defines_prefect_flow_or_task(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Name) and target.id in ("flow", "task", "Flow"):
            return True
    return False


def test_flows_holds_only_prefect_flows_and_tasks() -> None:
    others = [p.name for p in sorted((ROOT / "flows").glob("*.py"))
              if p.name != "__init__.py" and not _defines_prefect_flow_or_task(p)]  # fmt: skip
    assert not others, f"flows/ should hold Prefect flows and tasks only; move these to cdnlake/: {others}"


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


# A meta-path finder that makes pyspark and py4j unimportable, as on a machine without them.
_NO_PYSPARK = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('pyspark', 'py4j', 'delta'):
            raise ImportError(f'{name} is blocked by the test')
        return None
sys.meta_path.insert(0, _Blocked())
from cdnlake.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["run", "--help"]])
def test_cli_runs_without_pyspark(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLAKE_")}
    done = subprocess.run([sys.executable, "-c", _NO_PYSPARK, *argv], cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "blocked by the test" not in done.stderr
    assert ("usage:" in done.stdout) if "--help" in argv else ('"warehouse"' in done.stdout)


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    code = _NO_PYSPARK.replace("from cdnlake.cli import main\nsys.exit(main(sys.argv[1:]))", "import pyspark")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "blocked by the test" in done.stderr
