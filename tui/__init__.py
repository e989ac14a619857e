"""The VirNucPro terminal dashboard (installed as `virnucpro.tui`; `virnucpro-tui` runs it).

`app` composes it; `state` is the pure model of jobs and devices; `link` talks to the daemon,
only through `virnucpro.daemon.client`, off the UI thread. Never imports torch.
"""
