"""Querysets compiled to SQL once per process, for the hottest lookups.

Django compiles a queryset to SQL every time it runs. For a query with subqueries that
costs more CPU than the database spends answering it: the forward-auth lookup compiled
in about 1.5 ms and ran in about 0.2 ms (docs/performance.md). A reverse proxy asks
that question before every request to an environment, so it is compiled once, with
sentinel values where the request's own values go, and each call puts the real values
in their places among the parameters. The SQL is Django's own, for this database.
"""

import contextvars
import re

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth import backends as auth_backends
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models.query import ModelIterable

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

    def __init__(self, build, *, counted=None, written_in=(), **sentinels):
        self.build = build
        # What count() counts, when the rows' own query does more than it needs
        # (columns from joined tables): the same rows, built from the same values.
        self.counted = counted or build
        self.sentinels = sentinels
        # On PostgreSQL these values (whole numbers) are written into the SQL rather
        # than sent apart: each value gets its own prepared statement, planned for it.
        # For a query whose best plan depends on the value (how many projects a user
        # is in decides how the list is best sorted) and that runs often per value.
        self.written_in = tuple(written_in)
        self._compiled = {}

    def _compile(self, alias, shape):
        if shape == "count":
            queryset = self.counted(**self.sentinels).using(alias).order_by()
        else:
            queryset = self.build(**self.sentinels).using(alias)
            if shape is not None and shape != (0, None):
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

    def _compiled_shape(self, alias, shape):
        key = (alias, connections[alias].vendor, shape)
        compiled = self._compiled.get(key)
        if compiled is None:
            kind = shape[0] if isinstance(shape, tuple) else None
            if kind == "with-user":
                # The query's first row: LIMIT 1 inside, so the join cannot reorder it.
                own = self._compiled_shape(alias, (0, 1))
                compiled = _WithUser(shape[1]._compiled_shape(alias, None), own)
            elif kind == "counted":
                page = self._compiled_shape(alias, shape[1:])
                compiled = _Counted(page, self._compiled_shape(alias, "count"))
            else:
                compiled = self._compile(alias, shape)
            if len(self._compiled) >= self.MAX_SHAPES:
                self._compiled.clear()
            self._compiled[key] = compiled
        return compiled

    def _statement(self, alias, shape, values):
        compiled = self._compiled_shape(alias, shape)
        params = list(compiled.params)
        for name, indexes in compiled.places.items():
            for index in indexes:
                params[index] = values[name]
        sql = compiled.sql
        for name, literal in compiled.written.items():
            sql = sql.replace(literal, f" {int(values[name])}")
        return compiled, sql, params

    def _run(self, alias, shape, values, *, one=False):
        """Run the statement of ``shape``: (its compiled form, one row or all rows)."""
        statement, sql, params = self._statement(alias, shape, values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            return statement, cursor.fetchone() if one else cursor.fetchall()

    def first(self, alias="default", **values):
        """The first row as a model instance (annotations as attributes), or None; a
        ``values()`` query's as a dict.

        Built as Django's ModelIterable builds it: converted values, ``Model.from_db``.
        """
        statement, row = self._run(alias, None, values, one=True)
        return None if row is None else statement.found(alias, row)

    def rows(self, start=0, stop=None, alias="default", **values):
        """Rows ``start`` to ``stop`` (all by default) of a ``values()`` queryset, as dicts
        of the values ``values()`` would give."""
        statement, rows = self._run(alias, (start, stop), values)
        return statement.dicts(rows)

    def count(self, alias="default", **values):
        """How many rows the query has."""
        _, row = self._run(alias, "count", values, one=True)
        return row[0]

    def first_for_signed_in(self, request, alias="default", users=None, **values):
        """``first(user=<the request's user>, **values)``, in the statement that loads the
        request's user: one round trip to the database where there were two.

        Signing in stays Django's (``django.contrib.auth.get_user``: the session's
        backend, an active user, the session's password hash); it is only handed the
        user row this statement brought. ``users`` is the user lookup to join (by
        default the backend's own; see ``load_signed_in_user``). Returns the first row
        (an instance, or a dict for a ``values()`` query), or None, and
        ``request.user`` is loaded: None as well when the request is not signed in, or
        not by the user the row was fetched for.
        """
        pk = _session_user_pk(request)
        if pk is None:
            # No user in a session: the request's user, if something else set one.
            user = request.user
            return self.first(alias, **values, user=user.pk) if user.is_authenticated else None
        users = users or USER_QUERY
        values["user"] = pk
        statement, row = self._run(alias, ("with-user", users), values, one=True)
        user, found = (None, None) if row is None else statement.split(alias, row)
        return found if _signed_in_as(request, pk, user) else None

    def page_and_count(self, start, stop, alias="default", **values):
        """``(rows(start, stop), count())`` in one statement: the count rides along as a
        column of the page's rows. With no rows on the page, the count is None."""
        statement, rows = self._run(alias, ("counted", start, stop), values)
        if not rows:
            return [], None
        return statement.page.dicts([row[:-1] for row in rows]), rows[0][-1]


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
        # How Django would turn its rows into results: instances, or values() dicts.
        self.instances = issubclass(queryset._iterable_class, ModelIterable)
        # A values() row's names, as Django's ValuesIterable names them (no need to
        # build the cursor's description for each row).
        query = queryset.query
        self.names = [*query.extra_select, *query.values_select, *query.annotation_select]
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

    def found(self, alias, row):
        """The row as ``first()`` gives it (an instance), or as a dict of a ``values()``
        query's values."""
        return self.instance(alias, row) if self.instances else self.dicts([row])[0]

    def dicts(self, rows):
        """``values()`` rows as Django gives them: converted, as dicts by name."""
        return [dict(zip(self.names, row, strict=True)) for row in self.converted(rows)]


class _Joined:
    """Two compiled statements in one: their parameters one after the other."""

    def __init__(self, sql, first, second):
        self.sql = sql
        self.params = first.params + second.params
        shift = len(first.params)
        self.places = {name: list(places) for name, places in first.places.items()}
        for name, places in second.places.items():
            self.places.setdefault(name, []).extend(i + shift for i in places)
        self.written = {**first.written, **second.written}


class _WithUser(_Joined):
    """A query's statement joined to the user lookup's: the row holds the user's
    columns, a marker that the query found a row, then the query's own columns (NULL
    when it found none). The query's ``user`` and the user lookup's ``pk`` take the
    same value."""

    def __init__(self, user, own):
        sql = (
            f"SELECT * FROM ({user.sql}) precompiled_user "  # noqa: S608 (Django's own SQL)
            "LEFT JOIN (SELECT 1 AS precompiled_found, precompiled_row.* "
            f"FROM ({own.sql}) precompiled_row) precompiled_own ON 1 = 1"
        )
        super().__init__(sql, user, own)
        self.places["user"] = self.places.pop("pk") + self.places.get("user", [])
        self.user, self.own = user, own
        self.user_columns = len(user.compiler.select)

    def split(self, alias, row):
        """(the user, the query's row or None) from a row of the joined statement."""
        user = self.user.instance(alias, row[: self.user_columns])
        if row[self.user_columns] is None:
            return user, None
        return user, self.own.found(alias, row[self.user_columns + 1 :])


class _Counted(_Joined):
    """A page of a query with the query's count as a last column, computed once (an
    uncorrelated subquery). The page's rows keep their order: the outer query only
    adds a column to them, as Django's own wrappers of sliced queries do."""

    def __init__(self, page, count):
        sql = (
            "SELECT precompiled_page.*, "  # noqa: S608 (Django's own SQL)
            f"({count.sql}) AS precompiled_count FROM ({page.sql}) precompiled_page"
        )
        super().__init__(sql, page, count)
        self.page = page


class Paginated:
    """A precompiled query as Django's Paginator takes it: counted, and sliced by page.

    Every page is sliced ``per_page`` long (the last one simply has fewer rows), so
    each page number is one compiled shape, whatever the count: give the Paginator the
    same ``per_page`` and no orphans. The Paginator counts first and slices only pages
    that exist; the page asked for (``number``) comes with the count.
    """

    def __init__(self, query, per_page, number=None, **values):
        self.query = query
        self.per_page = per_page
        self.values = values
        # The page asked for is fetched with the count, in one statement; the
        # Paginator asks for another page only when that one does not exist.
        self._fetched = {}
        try:
            self._first_guess = max(int(number), 1)
        except (TypeError, ValueError):  # None, or not a number: page 1, as Paginator
            self._first_guess = 1

    #: Guess no further: each page is a compiled shape, and the number is user input.
    GUESSED_PAGES = 100

    def count(self):
        start = (self._first_guess - 1) * self.per_page
        if self._first_guess <= self.GUESSED_PAGES:
            rows, count = self.query.page_and_count(start, start + self.per_page, **self.values)
            if count is not None:
                self._fetched[start] = rows
                return count
        return self.query.count(**self.values)

    def __getitem__(self, bounds):
        if bounds.start in self._fetched:
            return self._fetched[bounds.start]
        return self.query.rows(bounds.start, bounds.start + self.per_page, **self.values)


#: How the backend looks a user up. A page may look its user up with more beside
#: (annotations), in a query of the same shape: see load_signed_in_user.
USER_QUERY = PrecompiledQuery(
    lambda pk: get_user_model()._default_manager.filter(pk=pk), pk=SENTINEL_ID
)

#: The user row that a view's statement brought, while Django signs the request in.
_fetched_user = contextvars.ContextVar("precompiled_fetched_user", default=None)


def _session_user_pk(request):
    """The user id the request's session holds (not yet checked), or None."""
    try:
        return get_user_model()._meta.pk.to_python(request.session[SESSION_KEY])
    except (AttributeError, KeyError, ValidationError):
        return None


def _signed_in_as(request, pk, user):
    """Load ``request.user`` as Django does, handing it ``user`` (the row for ``pk``, or
    None) instead of a query of its own; whether the request is signed in as ``pk``."""
    token = _fetched_user.set(user)
    try:
        return request.user.is_authenticated and request.user.pk == pk
    finally:
        _fetched_user.reset(token)


def load_signed_in_user(request, users, alias="default"):
    """Load ``request.user`` through ``users``: the user lookup with values beside it
    that the page shows (annotations), in the one statement. Signing in is Django's,
    as in ``PrecompiledQuery.first_for_signed_in``; a request whose session holds no
    user is left as it is."""
    pk = _session_user_pk(request)
    if pk is not None:
        _signed_in_as(request, pk, users.first(alias, pk=pk))


class ModelBackend(auth_backends.ModelBackend):
    """Django's ModelBackend, with the user looked up by a precompiled query.

    Every signed-in request loads its user (django.contrib.auth.get_user, which then
    checks the session's password hash as always): the same query, the same checks
    (an inactive user is nobody), without compiling it on each request. When a view's
    own statement brought the user's row along (``first_for_signed_in``), that row is
    used instead of asking again.
    """

    def get_user(self, user_id):
        try:
            pk = get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        user = _fetched_user.get()
        if user is None or user.pk != pk:
            user = USER_QUERY.first(pk=pk)
        return user if user is not None and self.user_can_authenticate(user) else None
