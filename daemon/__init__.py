"""The VirNucPro daemon (installed as `virnucpro.daemon`): job server and client.

Not built yet: see the daemon issue. This package exists so that the layout of
docs/ARCHITECTURE (one distribution, three rooms) holds from the start.
"""
