from django.utils.functional import SimpleLazyObject

from environments.models import Project


def navigation(request):
    """The signed-in user's projects for the header, queried only if a page shows them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_projects": []}
    return {
        "user_projects": SimpleLazyObject(
            lambda: list(Project.objects.filter(memberships__user=user).only("name"))
        )
    }
