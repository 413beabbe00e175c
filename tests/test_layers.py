"""The app's inside: imports point down the layers and never in a loop (a walk over the
syntax tree of environments/, module-level and function-level imports alike).

The layers, from the bottom up (README, "Where things are"):"""

import ast

from django.conf import settings

#: Package or module prefix -> layer; a module belongs to its longest matching prefix.
LAYERS = {
    "environments.refusals": 0,
    "environments.crypto": 0,
    "environments.models": 1,
    "environments.permissions": 2,
    "environments.drivers": 2,
    # What both the pages and the API use.
    "environments.forms": 3,
    "environments.history_cursor": 3,
    "environments.history_csv": 3,
    "environments.cache_keys": 3,
    "environments.time_zones": 3,
    "environments.tokens": 3,
    "environments.operations": 4,
    "environments.notify": 5,
    "environments.windows": 6,
    "environments.web": 7,
    # Single sign-on: its sign-in applies roles through operations, like admin does.
    "environments.sso": 7,
    "environments.api": 7,
    "environments.admin": 7,
    "environments.demo": 7,
    "environments.management": 7,
    "environments.apps": 7,
    "environments.checks": 7,
}

APP = settings.BASE_DIR / "environments"


def module_name(path):
    parts = path.relative_to(settings.BASE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {
        module_name(path): path
        for path in sorted(APP.rglob("*.py"))
        if "migrations" not in path.parts and path != APP / "__init__.py"
    }


def layer(name):
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} has no layer: add it to LAYERS (and to the README)"
    return LAYERS[max(matches, key=len)]


def imports(path, known):
    """The app modules ``path`` imports, wherever in the file the import stands."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("environments"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("environments."):
                    yield alias.name


def graph():
    known = modules()
    return {name: set(imports(path, known)) - {name} for name, path in known.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_import_points_up_the_layers():
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in graph().items()
        for target in targets
        if target != "environments" and layer(target) > layer(name)
    ]
    assert upward == []


def test_no_loop_among_the_apps_modules():
    edges = graph()
    loops = []

    def visit(name, path):
        for target in sorted(edges.get(name, ())):
            if target in path:
                loops.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    done = set()
    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    assert loops == []


def test_models_know_no_rules_and_no_writer():
    for name, targets in graph().items():
        if name.startswith("environments.models"):
            assert not {
                t
                for t in targets
                if t.startswith(("environments.permissions", "environments.operations"))
            }, name
