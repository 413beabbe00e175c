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
    A slice is part of the shape (Django writes LIMIT and OFFSET into the SQL), so each
    slice asked for is compiled once too: callers slice by page, not by user input.
    """

    #: Beyond this many compiled shapes per query, start again (a bound, not a tuning).
    MAX_SHAPES = 256

    def __init__(self, build, **sentinels):
        self.build = build
        self.sentinels = sentinels
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
        sentinels = set(self.sentinels.values())
        if connections[alias].vendor == "postgresql":
            sql, params = _write_constants_in(connections[alias], sql, params, sentinels)
        places = {}
        for name, sentinel in self.sentinels.items():
            places[name] = [i for i, param in enumerate(params) if param == sentinel]
            if not places[name]:
                raise ValueError(f"{name} is not a parameter of the query")
        return _Statement(queryset, compiler, sql, tuple(params), places)

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
        return compiled, params

    def first(self, alias="default", **values):
        """The first row as a model instance (annotations as attributes), or None.

        Built as Django's ModelIterable builds it: converted values, ``Model.from_db``.
        """
        statement, params = self._statement(alias, None, values)
        with connections[alias].cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        return None if row is None else statement.instance(alias, row)

    def rows(self, start=0, stop=None, alias="default", **values):
        """Rows ``start`` to ``stop`` (all by default) of a ``values()`` queryset, as dicts
        of the values ``values()`` would give."""
        statement, params = self._statement(alias, (start, stop), values)
        with connections[alias].cursor() as cursor:
            cursor.execute(statement.sql, params)
            names = [column[0] for column in cursor.description]
            rows = statement.converted(cursor.fetchall())
        return [dict(zip(names, row, strict=True)) for row in rows]

    def count(self, alias="default", **values):
        """How many rows the query has."""
        statement, params = self._statement(alias, "count", values)
        with connections[alias].cursor() as cursor:
            cursor.execute(statement.sql, params)
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
    from psycopg.sql import Literal

    connection.ensure_connection()
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
            constant = int(value) if isinstance(value, int) else str(value)
            literal = Literal(constant).as_string(connection.connection)
            written.append(literal.replace("%", "%%"))
    return "".join(written), kept


class _Statement:
    """One compiled shape of a query, and how to turn its row into a model instance."""

    def __init__(self, queryset, compiler, sql, params, places):
        self.sql = sql
        self.params = params
        self.places = places
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
    """A precompiled query as Django's Paginator takes it, in one query per page.

    The query carries the count of all its rows beside each (``total``: a window
    count, ``Window(Count("pk"))``), so the page asked for comes with the count the
    Paginator asks first. Every page is sliced ``per_page`` long (the last one simply
    has fewer rows), so each page number is one compiled shape, whatever the count.
    """

    #: Past this row no page is fetched before the count says it exists (the offset
    #: goes into the SQL as a number: ?page=10**20 must not reach the database).
    MAX_OFFSET = 2**31 - 1

    def __init__(self, query, per_page, number, **values):
        self.query = query
        self.per_page = per_page
        self.values = values
        try:
            self.number = max(int(number), 1)
        except (TypeError, ValueError, OverflowError):
            self.number = 1  # as Paginator.get_page reads it
        self._pages = {}

    def _rows(self, start):
        if start not in self._pages:
            self._pages[start] = self.query.rows(start, start + self.per_page, **self.values)
        return self._pages[start]

    def count(self):
        start = (self.number - 1) * self.per_page
        rows = self._rows(start) if start <= self.MAX_OFFSET else []
        # Past the last page no row tells the total: count them (Paginator then shows
        # the last page).
        return rows[0]["total"] if rows else self.query.count(**self.values)

    def __getitem__(self, bounds):
        return self._rows(bounds.start)


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
