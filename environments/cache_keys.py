"""Cache keys and ETags of the pages that are asked for most.

A page's key is made of the version of what it shows (Environment.revision, which
goes up in the transaction of every change its pages show, or permissions.visible_version
for pages across environments), who is looking, the time zone its times are shown in
and the templates' own version. When any of them changes, so does the key, and the
old entry is never asked for again. The pages keep nothing of one request under it:
no CSRF token, no password.
"""

import functools
import hashlib

from django.conf import settings
from django.utils import timezone

from environments.permissions import viewer_role


@functools.cache
def templates_version():
    """A digest of every template: a deploy that changes one changes every key."""
    digest = hashlib.sha256()
    for path in sorted((settings.BASE_DIR / "templates").rglob("*.html")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def shared_key(*parts):
    """The key of what ``parts`` name, the same for everyone who may see it."""
    parts = (*parts, timezone.get_current_timezone_name(), templates_version())
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


def viewer_key(request, *parts):
    """The key of what ``parts`` name as this viewer sees it."""
    return shared_key(*parts, request.user.pk, request.user.is_superuser)


def live_region_key(request, environment):
    """The key of an environment's live region for this viewer: its cache key and the
    status poll's ETag."""
    role = viewer_role(request.user, environment)
    return viewer_key(request, "live", environment.pk, environment.revision, role)
