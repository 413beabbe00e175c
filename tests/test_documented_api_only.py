"""App code uses Django through its documented API only: no compiler or query internals,
no private attributes of Django's objects. An upgrade of Django must not break the portal
silently (a walk over the syntax tree of environments/ and lcs_portal/)."""

import ast

import pytest
from django.conf import settings

PACKAGES = ("environments", "lcs_portal")
INTERNAL_NAMES = {
    "klass_info",
    "annotation_col_map",
    "get_converters",
    "apply_converters",
    "_iterable_class",
    "values_select",
}
COMPILING = {"get_compiler", "as_sql"}
# Model._meta is Django's documented Model _meta API.
DOCUMENTED_PRIVATE = {"_meta"}


def app_files():
    for package in PACKAGES:
        yield from sorted((settings.BASE_DIR / package).rglob("*.py"))


def findings(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    custom_expressions = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
            if bases & {"Func", "Aggregate", "Transform", "Lookup"}:
                custom_expressions.update(ast.walk(node))
    for node in ast.walk(tree):
        where = f"{path.relative_to(settings.BASE_DIR)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "django.db.models.sql"
        ):
            yield f"{where}: imports {node.module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("django.db.models.sql"):
                    yield f"{where}: imports {alias.name}"
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        if name in INTERNAL_NAMES:
            yield f"{where}: names {name}"
        if name in COMPILING and node not in custom_expressions:
            yield f"{where}: calls {name} outside a custom Func or Aggregate"
        if (
            isinstance(node, ast.Attribute)
            and name.startswith("_")
            and not name.startswith("__")
            and name not in DOCUMENTED_PRIVATE
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            yield f"{where}: reads {ast.unparse(node)}, a private attribute"


def test_app_code_uses_only_documented_django_api():
    found = [finding for path in app_files() for finding in findings(path)]
    assert found == []


@pytest.mark.parametrize(
    "code, finding",
    [
        ("from django.db.models.sql import Query", "imports django.db.models.sql"),
        ("queryset.query.get_compiler('default').as_sql()", "calls get_compiler"),
        ("rows = compiler.klass_info", "names klass_info"),
        ("client = cache._cache", "reads cache._cache, a private attribute"),
        ("pool = connection._connection", "reads connection._connection"),
    ],
)
def test_the_walk_finds_each_kind_of_internal_use(tmp_path, settings, code, finding):
    settings.BASE_DIR = tmp_path
    path = tmp_path / "environments" / "bad.py"
    path.parent.mkdir()
    path.write_text(code + "\n")
    assert any(finding in line for line in findings(path))


def test_as_sql_inside_a_custom_func_is_allowed(tmp_path, settings):
    settings.BASE_DIR = tmp_path
    path = tmp_path / "environments" / "ok.py"
    path.parent.mkdir()
    path.write_text(
        "class Lower(Func):\n"
        "    def as_sqlite(self, compiler, connection):\n"
        "        return self.as_sql(compiler, connection)\n"
    )
    assert list(findings(path)) == []
