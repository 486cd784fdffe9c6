"""The run lifecycle's modules import one way: no circle among reconciliation's modules, counting
the imports inside functions too (a lazy import still closes a circle, it only hides it).

The circle this keeps gone: runs.services → runs.tasks → matching.sharding → matching.tasks →
matching.simulation → runs.services (the services sent their tasks by importing the task modules
that import them). Messages are now built by task name in runs.dispatch."""

import ast
from pathlib import Path

from config.celery import app
from reconciliation.runs import dispatch

ROOT = Path(__file__).resolve().parents[3]


def import_graph(package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, at module level and inside functions."""
    modules = {}
    for path in (ROOT / package).rglob("*.py"):
        if {"tests", "migrations"} & set(path.parts):
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                on_stack.discard(w)
                component.append(w)
            on_stack.discard(v)
            if component:
                found.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_runs_and_matching_modules_form_no_import_circle():
    graph = import_graph("reconciliation")
    # The lifecycle is what sharding, simulation and the tasks call; it calls no task module.
    assert "reconciliation.runs.lifecycle" in graph["reconciliation.matching.sharding"]
    assert "reconciliation.runs.lifecycle" in graph["reconciliation.matching.simulation"]
    assert not {m for m in graph["reconciliation.runs.lifecycle"] if m.endswith(".tasks")}
    # matching.passes ↔ aggregation/fuzzy is the pass registry (passes imports its plug-ins at the
    # end of the module), not a lifecycle path.
    allowed = [
        [
            "reconciliation.matching.aggregation",
            "reconciliation.matching.fuzzy",
            "reconciliation.matching.passes",
        ]
    ]
    assert [c for c in cycles(graph) if c not in allowed] == []


def test_every_task_a_message_names_is_registered():
    app.loader.import_default_modules()
    assert set(dispatch.TASK_NAMES) <= set(app.tasks), set(dispatch.TASK_NAMES) - set(app.tasks)
