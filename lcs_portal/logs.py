"""Logging that an operator can read."""

import logging

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


class RequestId(logging.Filter):
    """Each line gets ``request_id``: the id of the request being answered (its
    X-Request-Id), "-" for lines written outside one (a worker, the watchdog)."""

    def filter(self, record):
        record.request_id = request_ids.current.get()
        return True
