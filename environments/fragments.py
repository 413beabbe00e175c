"""Rendered parts of pages, cached under everything they show.

A fragment's key is made of the values it shows, the templates' own version, the URL
prefix and the time zone, so a cached fragment is right by construction: when a value
changes, so does the key, and the old entry is never asked for again. Entries live in
each process's memory (the "fragments" cache, settings.CACHES) for a few minutes at
most, which bounds what a key cannot see: a user renamed in the admin, say, is shown
under the old name in a cached fragment for at most that long.

A fragment never holds a CSRF token: it is rendered with a placeholder in the token's
place, and each response gets a freshly masked token (``with_csrf_token``), as if the
fragment had been rendered for it.
"""

import functools
import hashlib
import secrets

from django.core.cache import caches
from django.middleware.csrf import get_token
from django.template.loader import get_template, render_to_string
from django.urls import get_script_prefix
from django.utils import timezone
from django.utils.safestring import mark_safe

CACHE = "fragments"

#: The templates a cached fragment (or the status poll's ETag) is rendered from.
TEMPLATES = (
    "base.html",
    "environments/list.html",
    "environments/detail.html",
    "environments/partials/status_badge.html",
    "environments/partials/history_table.html",
    "environments/partials/outcome_badge.html",
)

# Unguessable, so that no text a user typed can contain it. Each process has its own:
# the fragments cache must stay in the process (a TextCache), as settings.py has it.
CSRF_PLACEHOLDER = f"csrf-placeholder-{secrets.token_hex(16)}"


@functools.cache
def templates_version():
    """The templates' own version: a deploy that changes them changes every key."""
    digest = hashlib.sha256()
    for name in TEMPLATES:
        digest.update(get_template(name).template.source.encode())
    return digest.hexdigest()[:16]


def key(name, facts):
    """The cache key of fragment ``name`` showing ``facts`` (anything with a stable repr)."""
    scope = (templates_version(), get_script_prefix(), timezone.get_current_timezone_name())
    digest = hashlib.sha256(repr((scope, facts)).encode()).hexdigest()
    return f"{name}:{digest}"


def get(fragment_key):
    return caches[CACHE].get(fragment_key)


def keep(fragment_key, html):
    caches[CACHE].set(fragment_key, str(html))


def render(template_name, context, request):
    """Render a fragment for the cache: the CSRF token stands as a placeholder."""
    return render_to_string(template_name, {**context, "csrf_token": CSRF_PLACEHOLDER}, request)


def with_csrf_token(html, request):
    """A cached fragment, with this response's own masked CSRF token in its place."""
    if CSRF_PLACEHOLDER in html:  # asking for a token sets the CSRF cookie: only if needed
        html = html.replace(CSRF_PLACEHOLDER, get_token(request))
    return mark_safe(html)  # noqa: S308 (our own render)


def cached(name, facts, template_name, context, request):
    """Fragment ``name`` from the cache, or rendered from ``context()`` and kept."""
    return kept(name, facts, lambda: render(template_name, context(), request), request)


def kept(name, facts, rendered, request):
    """Fragment ``name`` from the cache, or ``rendered()`` (with CSRF_PLACEHOLDER where
    a token goes) and kept; with this response's own CSRF token either way."""
    fragment_key = key(name, facts)
    html = get(fragment_key)
    if html is None:
        html = rendered()
        keep(fragment_key, html)
    return with_csrf_token(html, request)
