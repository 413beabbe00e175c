"""Exit codes: one meaning each, the same for every command (docs/api.md)."""

OK = 0  # done
FAILED = 1  # the operation failed (or the portal failed on its side: a 5xx problem)
REFUSED = 2  # the portal refused, or the command was used wrongly: nothing was done
TIMEOUT = 3  # --timeout passed while waiting; the operation goes on
UNREACHABLE = 4  # the portal could not be reached or understood (connection, TLS, HTML)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
