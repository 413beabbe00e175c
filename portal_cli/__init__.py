"""`portal`: the environment maintenance portal's command line, on its JSON API.

It needs only httpx, click and rich (never Django): install it with `pip install .` on
any machine that reaches the portal."""

__version__ = "0.1.0"
