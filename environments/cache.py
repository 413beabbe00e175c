"""Cache backends: Django's Redis cache with one client per connection pool, and a
process's own cache of rendered text.

Django's RedisCacheClient builds a new ``redis.Redis`` object for every cache call; its
constructor sets up a few hundred response callbacks, which cost about a third of a
millisecond of CPU per signed-in request when sessions are read from Redis
(docs/performance.md). redis-py's clients are thread-safe and meant to be kept: each
command takes a connection from the pool and gives it back. So each pool gets one.
"""

import math
import threading
import time
from collections import OrderedDict

from django.core.cache.backends import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient


class TextCache(BaseCache):
    """A process's own cache of text (rendered fragments): LocMemCache without its
    pickling, which text does not need (it is immutable), and without memcached's key
    checks, which keys made of a hex digest do not need. The least recently used entry
    goes first once MAX_ENTRIES are kept; an entry lives TIMEOUT seconds at most.

    Keys are taken as given (no KEY_PREFIX or version); values must be ``str``.
    """

    def __init__(self, location, params):
        super().__init__(params)
        self._data = OrderedDict()  # key -> (monotonic deadline, text)
        self._lock = threading.Lock()

    def _deadline(self, timeout):
        timeout = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return math.inf if timeout is None else time.monotonic() + timeout

    def get(self, key, default=None, version=None):
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            if entry[0] <= time.monotonic():
                del self._data[key]
                return default
            self._data.move_to_end(key)
            return entry[1]

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if not isinstance(value, str):
            raise TypeError(f"TextCache keeps text only, not {type(value).__name__}")
        deadline = self._deadline(timeout)
        with self._lock:
            self._data[key] = (deadline, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max_entries:
                self._data.popitem(last=False)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if self.has_key(key):
            return False
        self.set(key, value, timeout)
        return True

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return False
            self._data[key] = (self._deadline(timeout), entry[1])
            return True

    def delete(self, key, version=None):
        with self._lock:
            return self._data.pop(key, None) is not None

    def clear(self):
        with self._lock:
            self._data.clear()
