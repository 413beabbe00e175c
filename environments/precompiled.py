"""Querysets compiled to SQL once per process, for the hottest lookups.

Django compiles a queryset to SQL every time it runs. For a query with subqueries that
costs more CPU than the database spends answering it: the forward-auth lookup compiled
in about 1.5 ms and ran in about 0.2 ms (docs/performance.md). A reverse proxy asks
that question before every request to an environment, so it is compiled once, with
sentinel values where the request's own values go, and each call puts the real values
in their places among the parameters. The SQL is Django's own, for this database.
"""

import re

from django.contrib.auth import backends as auth_backends
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections

#: Stand-ins for a user's id and a slug: values no real row has.
SENTINEL_ID = -918_273_645
SENTINEL_SLUG = "precompiled-sentinel-slug"


class PrecompiledQuery:
    """``build(**values)`` returns the queryset; ``first``, ``rows`` and ``count`` run it.

    ``sentinels`` give each value a stand-in that appears nowhere else among the
    query's parameters, so its places can be found; the queryset's shape must not
    depend on the values (filters and annotations only take them as parameters).
    A value whose name is not among the query's sentinels is ignored, so callers may
    pass the same values to the variants of a query.
    A slice is part of the shape (Django writes LIMIT and OFFSET into the SQL), so each
    slice asked for is compiled once too: callers slice by page, not by user input.
    """

    #: Beyond this many compiled shapes per query, start again (a bound, not a tuning).
    MAX_SHAPES = 256

    def __init__(self, build, *, written_in=(), **sentinels):
        self.build = build
        self.sentinels = sentinels
        # On PostgreSQL these values (whole numbers) are written into the SQL rather
        # than sent apart: each value gets its own prepared statement, planned for it.
        # For a query whose best plan depends on the value (how many projects a user
        # is in decides how the list is best sorted) and that runs often per value.
        self.written_in = tuple(written_in)
        self._compiled = {}

    def _compile(self, alias, shape):
        queryset = self.build(**self.sentinels).using(alias)
        if shape == "count":
            queryset = queryset.order_by()
        elif shape is not None and shape != (0, None):
            queryset = queryset[shape[0] : shape[1]]
        compiler = queryset.query.get_compiler(alias)
        sql, params = compiler.as_sql()
        if shape == "count":
            sql = f"SELECT COUNT(*) FROM ({sql}) counted"  # noqa: S608 (Django's own SQL)
        written = {}
        if connections[alias].vendor == "postgresql":
            written = {name: self.sentinels[name] for name in self.written_in}
            kept = {v for name, v in self.sentinels.items() if name not in written}
            sql, params = _write_constants_in(connections[alias], sql, params, kept)
            for name, sentinel in written.items():
                written[name] = _literal(connections[alias], sentinel)
                if written[name] not in sql:
                    raise ValueError(f"{name} is not a parameter of the query")
        places = {}
        for name, sentinel in self.sentinels.items():
            if name in written:
                continue
            places[name] = [i for i, param in enumerate(params) if param == sentinel]
            if not places[name]:
                raise ValueError(f"{name} is not a parameter of the query")
        return _Statement(queryset, compiler, sql, tuple(params), places, written)

    def _statement(self, alias, shape, values):
        key = (alias, connections[alias].vendor, shape)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(alias, shape)
            if len(self._compiled) >= self.MAX_SHAPES:
                self._compiled.clear()
            self._compiled[key] = compiled
        params = list(compiled.params)
        for name, indexes in compiled.places.items():
            for index in indexes:
                params[index] = values[name]
        sql = compiled.sql
        for name, literal in compiled.written.items():
            sql = sql.replace(literal, f" {int(values[name])}")
        return compiled, sql, params

    def first(self, alias="default", **values):
        """The first row as a model instance (annotations as attributes), or None.

        Built as Django's ModelIterable builds it: converted values, ``Model.from_db``.
        """
        statement, sql, params = self._statement(alias, None, values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else statement.instance(alias, row)

    def rows(self, start=0, stop=None, alias="default", **values):
        """Rows ``start`` to ``stop`` (all by default) of a ``values()`` queryset, as dicts
        of the values ``values()`` would give."""
        statement, sql, params = self._statement(alias, (start, stop), values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            names = [column[0] for column in cursor.description]
            rows = statement.converted(cursor.fetchall())
        return [dict(zip(names, row, strict=True)) for row in rows]

    def count(self, alias="default", **values):
        """How many rows the query has."""
        _, sql, params = self._statement(alias, "count", values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]


def _write_constants_in(connection, sql, params, sentinels):
    """The SQL with every parameter but the sentinels written in as a quoted literal.

    Every other parameter is a constant of the query's shape (an outcome, a kind), so
    writing it in changes nothing but the plan: PostgreSQL prepares the statement
    (settings.py) and plans it once, and a plan made for ``outcome = 'queued'`` can use
    the partial index on active operations, where one for ``outcome = $2`` cannot.
    Only whole numbers and text are written in, quoted by psycopg; others stay
    parameters.
    """
    parts = re.split(r"(%%|%s)", sql)
    kept, written, values = [], [], iter(params)
    for part in parts:
        if part != "%s":
            written.append(part)
            continue
        value = next(values)
        if not isinstance(value, int | str) or type(value) is bool or value in sentinels:
            kept.append(value)
            written.append(part)
        else:
            written.append(_literal(connection, value).replace("%", "%%"))
    return "".join(written), kept


def _literal(connection, value):
    """A whole number or a text as psycopg quotes it (" -5", "'it''s'")."""
    from psycopg.sql import Literal

    connection.ensure_connection()
    constant = int(value) if isinstance(value, int) else str(value)
    return Literal(constant).as_string(connection.connection)


class _Statement:
    """One compiled shape of a query, and how to turn its row into a model instance."""

    def __init__(self, queryset, compiler, sql, params, places, written):
        self.sql = sql
        self.params = params
        self.places = places
        self.written = written
        self.compiler = compiler
        self.converters = compiler.get_converters([column[0] for column in compiler.select])
        klass_info = compiler.klass_info
        if klass_info is None:  # values(), or a count
            return
        if klass_info.get("related_klass_infos"):
            raise ValueError("first() takes no select_related()")
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.model_columns = slice(fields[0], fields[-1] + 1)
        columns = compiler.select[self.model_columns]
        self.init_names = [column[0].target.attname for column in columns]
        self.annotations = list(compiler.annotation_col_map.items())

    def converted(self, rows):
        """The rows with Django's converters applied (dates on SQLite, counts...)."""
        if not self.converters:
            return rows
        return list(self.compiler.apply_converters(rows, self.converters))

    def instance(self, alias, row):
        (row,) = self.converted([row])
        instance = self.model.from_db(alias, self.init_names, row[self.model_columns])
        for name, column in self.annotations:
            setattr(instance, name, row[column])
        return instance


class Paginated:
    """A precompiled query as Django's Paginator takes it: counted, and sliced by page.

    Every page is sliced ``per_page`` long (the last one simply has fewer rows), so
    each page number is one compiled shape, whatever the count. The Paginator counts
    first and slices only pages that exist.
    """

    def __init__(self, query, per_page, **values):
        self.query = query
        self.per_page = per_page
        self.values = values

    def count(self):
        return self.query.count(**self.values)

    def __getitem__(self, bounds):
        return self.query.rows(bounds.start, bounds.start + self.per_page, **self.values)


_USER_QUERY = PrecompiledQuery(
    lambda pk: get_user_model()._default_manager.filter(pk=pk), pk=SENTINEL_ID
)


class ModelBackend(auth_backends.ModelBackend):
    """Django's ModelBackend, with the user looked up by a precompiled query.

    Every signed-in request loads its user (django.contrib.auth.get_user, which then
    checks the session's password hash as always): the same query, the same checks
    (an inactive user is nobody), without compiling it on each request.
    """

    def get_user(self, user_id):
        try:
            pk = get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        user = _USER_QUERY.first(pk=pk)
        return user if user is not None and self.user_can_authenticate(user) else None
