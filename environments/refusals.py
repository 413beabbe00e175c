"""Why an action may not start: one exception, raised from the rules up to the writer,
answered by the pages and the API with the same status and message."""


class OperationRefused(Exception):
    """A Maintain action that may not start; ``message`` is for the user."""

    BUSY = "busy"  # another operation is in progress (HTTP 409)
    FORBIDDEN = "forbidden"  # the user may not act here (HTTP 403)
    NOT_ALLOWED = "not_allowed"  # not possible in the current status (HTTP 409)
    INELIGIBLE = "ineligible"  # never possible on this environment (HTTP 409)
    INVALID = "invalid"  # the request itself is wrong (HTTP 400)

    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def status(self):
        """The HTTP status a page or the API answers it with."""
        return {self.FORBIDDEN: 403, self.INVALID: 400}.get(self.code, 409)
