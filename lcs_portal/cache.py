"""The shared cache (Redis), used as a cache: while it cannot be reached, the portal goes
on from PostgreSQL.

Django's Redis backend raises when Redis is down, and its cached_db sessions then answer
500 to every signed-in request (the session is read from the database but written back
to the cache without a guard) and to every sign-in (a new session key is checked against
the cache). Everything the portal keeps in the cache can be made again: sessions are
written through to the database, pages are kept under their revision, and the API's
rate limit only counts. So here a read that cannot reach Redis is a miss and a write is
skipped, each logged as a warning; the socket timeouts are short (settings.CACHES), so
that a Redis that does not answer at all costs each call half a second at most.

One thing a cache cannot do while away: forget. A session signed out while this host
cannot reach a Redis that is still up (a network partition, not a restart: the
deployment's Redis keeps nothing on disk) stays in Redis until it expires; docs/deploy.md
says so.
"""

import logging

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger("lcs_portal.cache")
UNREACHABLE = (ConnectionError, TimeoutError)


class RedisCacheThatMayGoAway(RedisCache):
    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except UNREACHABLE as exc:
            return _missed("get", exc, default)

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except UNREACHABLE as exc:
            return _missed("get_many", exc, {})

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except UNREACHABLE as exc:
            return _missed("has_key", exc, False)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except UNREACHABLE as exc:
            _missed("set", exc)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except UNREACHABLE as exc:
            return _missed("set_many", exc, list(data))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except UNREACHABLE as exc:
            return _missed("add", exc, False)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().touch(key, timeout, version)
        except UNREACHABLE as exc:
            return _missed("touch", exc, False)

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except UNREACHABLE as exc:
            return _missed("delete", exc, False)

    def delete_many(self, keys, version=None):
        try:
            super().delete_many(keys, version)
        except UNREACHABLE as exc:
            _missed("delete_many", exc)

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except UNREACHABLE as exc:
            _missed("incr", exc)
            # What Django's cache API says of a key it does not have.
            raise ValueError(f"Key '{key}' not found: the cache cannot be reached.") from None


def _missed(operation, exc, answer=None):
    logger.warning("Cache %s skipped: Redis cannot be reached (%s).", operation, exc)
    return answer
