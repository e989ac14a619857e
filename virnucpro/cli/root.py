"""The `virnucpro` group and its subcommands, one per module (`predict.py`, `models.py`...; each
sets up its logging with `virnucpro.logs.setup_logging`). Library errors are turned into exit
codes once, by `virnucpro.cli.common.ErrorExitGroup` (shared with `virnucpro-daemon`): each
`VirNucProError` subclass carries its own `exit_code`.
"""

from __future__ import annotations

import click

from virnucpro import __version__
from virnucpro.cli.common import ErrorExitGroup


@click.group(cls=ErrorExitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="virnucpro")
def main() -> None:
    """VirNucPro: find viral sequences in nucleotide FASTA or FASTQ with the published VirNucPro model."""
    from virnucpro.devices import number_gpus_as_nvidia_smi

    number_gpus_as_nvidia_smi()


def _register() -> None:
    # Imported here so that each subcommand module stays light and `--help` stays instant.
    from virnucpro.cli.doctor import doctor
    from virnucpro.cli.evaluate import evaluate
    from virnucpro.cli.models import models
    from virnucpro.cli.predict import predict
    from virnucpro.cli.report import report
    from virnucpro.cli.rescore import rescore
    from virnucpro.cli.train import train
    from virnucpro.daemon.client_cli import COMMANDS as client_commands

    main.add_command(predict)
    main.add_command(models)
    main.add_command(report)
    main.add_command(rescore)
    main.add_command(train)
    main.add_command(evaluate)
    main.add_command(doctor)
    for command in client_commands:
        main.add_command(command)


_register()
