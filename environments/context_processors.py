from django.utils.functional import SimpleLazyObject

from environments.models import Project
from environments.precompiled import SENTINEL_ID, PrecompiledQuery

#: The header names this many of the user's projects, then says how many more.
PROJECTS_NAMED = 3

_PROJECT_NAMES = PrecompiledQuery(
    lambda user: Project.objects.filter(memberships__user=user).values("name"), user=SENTINEL_ID
)


class UserProjects:
    """The signed-in user's projects, as the header shows them."""

    def __init__(self, names):
        self.all = ", ".join(names)
        self.named = ", ".join(names[:PROJECTS_NAMED])
        self.more = max(len(names) - PROJECTS_NAMED, 0)

    def __bool__(self):
        return bool(self.all)


def navigation(request):
    """The signed-in user's projects for the header, queried only if a page shows them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_projects": UserProjects([])}
    return {
        "user_projects": SimpleLazyObject(
            lambda: UserProjects([row["name"] for row in _PROJECT_NAMES.rows(user=user.pk)])
        )
    }
