"""The shared cache (Redis), used as a cache: while it cannot be reached, the portal goes
on from PostgreSQL.

Django's Redis backend raises when Redis is down, and its cached_db sessions then answer
500 to every signed-in request (the session is read from the database but written back
to the cache without a guard) and to every sign-in (a new session key is checked against
the cache). Everything the portal keeps in the cache can be made again: sessions are
written through to the database, pages are kept under their revision, and the API's
rate limit only counts (it lets every request through while Redis is away). So here a
read that cannot reach Redis is a miss and a write is skipped, and the process leaves
Redis alone for AWAY_SECONDS before trying again, so that a Redis that does not answer
at all (the socket timeouts in settings.CACHES) costs one request a timeout, not every
call of every request.

One thing a cache cannot do while away is forget: a session signed out while this host
cannot reach Redis stays readable there, by hosts that can, until it expires;
docs/deploy.md says so.
"""

import functools
import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger("lcs_portal.cache")
UNREACHABLE = (ConnectionError, TimeoutError)
#: How long a process leaves Redis alone after a call could not reach it.
AWAY_SECONDS = 5.0
#: Until when (time.monotonic()) this process leaves Redis alone. One per process: the
#: cache objects themselves are one per thread.
_away_until = 0.0


def _or(answer):
    """Run the cache call, or give ``answer`` (a function of the call's arguments) when
    Redis is away or cannot be reached now."""

    def decorate(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            global _away_until
            if time.monotonic() < _away_until:
                return answer(*args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as exc:
                _away_until = time.monotonic() + AWAY_SECONDS
                logger.warning(
                    "Cache %s skipped, and Redis left alone for %g s: it cannot be reached (%s).",
                    method.__name__,
                    AWAY_SECONDS,
                    exc,
                )
                return answer(*args, **kwargs)

        return call

    return decorate


def _missing_key(key, *args, **kwargs):
    # What Django's cache API says of a key it does not have.
    raise ValueError(f"Key '{key}' not found: the cache cannot be reached.")


class RedisCacheThatMayGoAway(RedisCache):
    @_or(lambda key, default=None, version=None: default)
    def get(self, key, default=None, version=None):
        return super().get(key, default, version)

    @_or(lambda keys, version=None: {})
    def get_many(self, keys, version=None):
        return super().get_many(keys, version)

    @_or(lambda key, version=None: False)
    def has_key(self, key, version=None):
        return super().has_key(key, version)

    @_or(lambda *args, **kwargs: None)
    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        super().set(key, value, timeout, version)

    @_or(lambda data, *args, **kwargs: list(data))  # the keys not set
    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return super().set_many(data, timeout, version)

    @_or(lambda *args, **kwargs: False)
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return super().add(key, value, timeout, version)

    @_or(lambda *args, **kwargs: False)
    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return super().touch(key, timeout, version)

    @_or(lambda *args, **kwargs: False)
    def delete(self, key, version=None):
        return super().delete(key, version)

    @_or(lambda *args, **kwargs: None)
    def delete_many(self, keys, version=None):
        super().delete_many(keys, version)

    @_or(_missing_key)
    def incr(self, key, delta=1, version=None):
        return super().incr(key, delta, version)
