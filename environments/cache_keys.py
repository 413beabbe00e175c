"""Cache keys and ETags of the pages that are asked for most.

A page's key is made of the revision of what it shows (Environment.revision, which
goes up in the transaction of every change its pages show), who is looking, the time
zone its times are shown in, and the templates' own version. When any of them changes,
so does the key, and the old entry is never asked for again.
"""

import functools
import hashlib

from django.conf import settings
from django.utils import timezone

from environments.access import viewer_role


@functools.cache
def templates_version():
    """A digest of every template: a deploy that changes one changes every key."""
    digest = hashlib.sha256()
    for path in sorted((settings.BASE_DIR / "templates").rglob("*.html")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def live_region_key(request, environment):
    """The key of an environment's live region for this viewer: its cache key and the
    status poll's ETag. The region shows nothing of one request but what is here (no
    CSRF token, no password), so one viewer's responses under one key are the same."""
    user = request.user
    return ".".join(
        str(part)
        for part in (
            environment.pk,
            environment.revision,
            user.pk,
            viewer_role(user, environment),
            timezone.get_current_timezone_name(),
            templates_version(),
        )
    )


def rows_key(environments):
    """The key of a list of environments' rows: who they are and their revisions."""
    parts = [timezone.get_current_timezone_name(), templates_version()]
    parts += [f"{environment.pk}.{environment.revision}" for environment in environments]
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()
