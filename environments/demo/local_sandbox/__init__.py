"""The demo's "Local sandbox": AOS, DIXF and MR as three small HTTP processes under a
supervisord, restarted by the command driver as a self-hosting user's would be.

``service`` is one such process, ``ctl`` is what the command driver runs against them
(the maintenance flag and health checks), and ``supervisord`` renders the supervisord
configuration and the driver entry, and starts and stops supervisord.
"""
