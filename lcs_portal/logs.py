"""Logging that an operator can read."""

import logging
import re

from lcs_portal import request_ids


class RefusalsOnOneLine(logging.Filter):
    """A refused request (403, 404, 409...) is logged as one line: the traceback of the
    PermissionDenied or Http404 that made it says nothing an operator needs. Server
    errors keep theirs."""

    def filter(self, record):
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True


class HideCalendarTokens(logging.Filter):
    """A calendar feed's address (/calendar/<token>/<slug>.ics) is its user's secret:
    what Django logs of a request (a 404, runserver's request line) shows it without
    the token. On the loggers, not a handler, so that every handler gets the masked
    line."""

    token = re.compile(r"(/calendar/)[^/\s\"']+")

    def filter(self, record):
        message = record.getMessage()
        masked = self.token.sub(r"\1…", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


class RequestId(logging.Filter):
    """Each line gets ``request_id``: the id of the request being answered (its
    X-Request-Id), "-" for lines written outside one (a worker, the watchdog)."""

    def filter(self, record):
        record.request_id = request_ids.current.get()
        return True
