"""Querysets compiled to SQL once per process, for the hottest lookups.

Django compiles a queryset to SQL every time it runs. For a query with subqueries that
costs more CPU than the database spends answering it: the forward-auth lookup compiled
in about 1.5 ms and ran in about 0.2 ms (docs/performance.md). A reverse proxy asks
that question before every request to an environment, so it is compiled once, with
sentinel values where the request's own values go, and each call puts the real values
in their places among the parameters. The SQL is Django's own, for this database.
"""

from django.contrib.auth import backends as auth_backends
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections


class PrecompiledQuery:
    """``build(**values)`` returns the queryset; ``first(**values)`` runs it.

    ``sentinels`` give each value a stand-in that appears nowhere else among the
    query's parameters, so its places can be found; the queryset's shape must not
    depend on the values (filters and annotations only take them as parameters).
    """

    def __init__(self, build, **sentinels):
        self.build = build
        self.sentinels = sentinels
        self._compiled = {}

    def _compile(self, alias):
        queryset = self.build(**self.sentinels).using(alias)
        sql, params = queryset.query.get_compiler(alias).as_sql()
        places = {}
        for name, sentinel in self.sentinels.items():
            places[name] = [i for i, param in enumerate(params) if param == sentinel]
            if not places[name]:
                raise ValueError(f"{name} is not a parameter of the query")
        return queryset.model, sql, tuple(params), places

    def first(self, alias="default", **values):
        """The first row as a model instance (annotations as attributes), or None."""
        key = (alias, connections[alias].vendor)
        if key not in self._compiled:
            self._compiled[key] = self._compile(alias)
        model, sql, params, places = self._compiled[key]
        params = list(params)
        for name, indexes in places.items():
            for index in indexes:
                params[index] = values[name]
        for row in model._default_manager.db_manager(alias).raw(sql, params):
            return row
        return None


_USER_QUERY = PrecompiledQuery(
    lambda pk: get_user_model()._default_manager.filter(pk=pk), pk=-918_273_645
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
