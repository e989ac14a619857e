"""The `virnucpro` command line: parsing only; the work is in the library.

`root.py` holds the group (`virnucpro.cli.root:main`, the console script) and registers the
subcommands, one per module (`predict.py`, `models.py`...). `common.py` is what both command
lines share (`virnucpro` and `virnucpro-daemon`): the group that turns library errors into exit
codes. This package's own import runs nothing, so that the daemon's command line can import
`common` without loading every subcommand.
"""
