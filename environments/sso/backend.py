"""The authentication backend that sessions opened by single sign-on name."""

from lcs_portal.auth import PeopleOnlyBackend


class SingleSignOnBackend(PeopleOnlyBackend):
    """Loads the user of a session that single sign-on opened. It checks no password
    (that is lcs_portal.auth.LocalPasswordBackend's), so a portal where local passwords
    are for superusers only still keeps everyone's single sign-on session. Never a
    service account's (PeopleOnlyBackend)."""

    def authenticate(self, request, **credentials):
        return None
