"""The VirNucPro terminal dashboard (installed as `virnucpro.tui`).

Not built yet: see the dashboard issue. It will talk to the daemon only through the client.
"""
