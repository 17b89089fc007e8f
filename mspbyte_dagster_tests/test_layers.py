"""The layering the design names: the store is persistence only, lib knows neither Dagster nor the CLI."""

import ast
from pathlib import Path

import mspbyte_dagster

PACKAGE = Path(mspbyte_dagster.__file__).parent
STORE_MAY_IMPORT = ("mspbyte_dagster.lib.store", "mspbyte_dagster.lib.model", "mspbyte_dagster.lib.errors")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_store_imports_no_domain_module():
    store = [p for p in (PACKAGE / "lib" / "store").rglob("*.py") if "migrations" not in p.parts]
    assert len(store) > 10
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in store
        for module in imports(path)
        if module.startswith("mspbyte_dagster") and not module.startswith(STORE_MAY_IMPORT)
    }
    assert not wrong


def test_lib_knows_neither_dagster_nor_the_cli():
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in (PACKAGE / "lib").rglob("*.py")
        for module in imports(path)
        if module.split(".")[0] == "dagster" or module.startswith(("mspbyte_dagster.defs", "mspbyte_dagster.cli"))
    }
    assert not wrong


def test_the_product_imports_the_development_tools_only_through_the_cli_that_names_them():
    """mspbyte_dev (generator, local Graph, bench) is not in the production image: nothing the pipeline
    runs may need it; only `mspbyte synth`, `bench` and `dev fake-graph` load it, by name, when asked."""
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in PACKAGE.rglob("*.py")
        for module in imports(path)
        if module.startswith("mspbyte_dev")
    }
    assert not wrong


def test_a_dev_command_without_the_dev_tools_says_so(monkeypatch):
    import sys

    from mspbyte_dagster_tests.snapshots import mspbyte

    for module in ("mspbyte_dev.synthetic", "mspbyte_dev.synthetic.sources"):  # as if not installed
        monkeypatch.setitem(sys.modules, module, None)
    code, _, err = mspbyte("synth", "--out", "/nonexistent/never-written")
    assert code == 2 and "development tool" in err and "make install" in err


def test_pandas_is_loaded_only_to_render_a_report():
    """pandas (with pyarrow: 80 MB of RSS, 0.45 s) comes with the report modules alone: a worker or a
    bench that only runs passes never loads it."""
    import subprocess
    import sys

    probe = (
        "import sys, mspbyte_dagster.definitions, mspbyte_dagster.lib.pipeline, mspbyte_dev.bench;"
        "assert 'pandas' not in sys.modules, 'loaded pandas';"
        "import mspbyte_dagster.lib.reports.tenant; assert 'pandas' in sys.modules"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
