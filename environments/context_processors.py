from django.contrib.auth import get_user_model
from django.db.models import Aggregate, JSONField, OuterRef, Subquery
from django.utils.functional import SimpleLazyObject

from environments.models import Project, ProjectMembership
from environments.precompiled import SENTINEL_ID, PrecompiledQuery, load_signed_in_user

#: The header names this many of the user's projects, then says how many more.
PROJECTS_NAMED = 3

#: The header's project names, for a page whose user came without them
#: (USER_WITH_PROJECTS brings them in the statement that loads the user).
_PROJECT_NAMES = PrecompiledQuery(
    lambda user: Project.objects.filter(memberships__user=user).values("name"), user=SENTINEL_ID
)


class NameList(Aggregate):
    """The values of a text column as one JSON array, on PostgreSQL and SQLite."""

    function = "JSON_GROUP_ARRAY"
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSONB_AGG", **extra)


#: The user, looked up as the sign-in backend does, with the names of their projects
#: beside (one statement): for pages that have no query of their own to bring the user.
USER_WITH_PROJECTS = PrecompiledQuery(
    lambda pk: (
        get_user_model()
        ._default_manager.filter(pk=pk)
        .annotate(
            project_names=Subquery(
                ProjectMembership.objects.filter(user=OuterRef("pk"))
                .order_by()
                .values("user")
                .annotate(names=NameList("project__name"))
                .values("names")
            )
        )
    ),
    pk=SENTINEL_ID,
)


class UserProjects:
    """The signed-in user's projects, as the header shows them: by name."""

    def __init__(self, names):
        # However the names came (an aggregate keeps no order), the same order.
        names = sorted(names, key=str.casefold)
        self.names = tuple(names)  # what the header shows, for its fragment's key
        self.all = ", ".join(names)
        self.named = ", ".join(names[:PROJECTS_NAMED])
        self.more = max(len(names) - PROJECTS_NAMED, 0)

    def __bool__(self):
        return bool(self.all)


def load_user_and_projects(request):
    """Load the signed-in user with their projects for the header, in one statement."""
    load_signed_in_user(request, USER_WITH_PROJECTS)


def navigation(request):
    """The signed-in user's projects for the header, queried only if a page shows them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_projects": UserProjects([])}
    if hasattr(user, "project_names"):  # the user came with them (USER_WITH_PROJECTS)
        return {"user_projects": UserProjects(user.project_names or [])}
    return {
        "user_projects": SimpleLazyObject(
            lambda: UserProjects([row["name"] for row in _PROJECT_NAMES.rows(user=user.pk)])
        )
    }
