"""`virnucpro models`: list, fetch, verify, import model sets, and print where they live.

Parsing and printing only; the work is in `virnucpro.models` (`sets`, `published`, `set_import`,
`set_checks`, `loadcheck`). stdout carries data (a table, JSON, a path); progress and messages go
to stderr. Library errors propagate to the top-level
group, which turns them into exit codes (a missing or corrupt set is a ModelError, exit 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from virnucpro.errors import ModelError


@click.group()
def models() -> None:
    """Manage model sets: `published` (downloaded once), `tiny` (tests and demos only),
    and folders imported for offline machines.

    \b
    Environment:
      VIRNUCPRO_HOME            cache folder (default: the user cache folder)
      VIRNUCPRO_HF_ENDPOINT     model hub mirror for DNABERT-S (default https://huggingface.co)
      VIRNUCPRO_ESM_URL         mirror of https://dl.fbaipublicfiles.com/fair-esm
      VIRNUCPRO_CLASSIFIER_URL  folder URL holding 300_model.pth and 500_model.pth
      VIRNUCPRO_OFFLINE=1       never download (HF_HUB_OFFLINE=1 works too)
    """


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the known model sets and their state."""
    from virnucpro.models.sets import human_size, list_sets

    sets = list_sets()
    if as_json:
        click.echo(json.dumps(sets, indent=2))
        return
    click.echo(f"{'NAME':<16} {'STATE':<11} {'KIND':<10} {'SIZE':>9}  PATH")
    for s in sets:
        state = s["state"]
        kind = "tiny" if s["is_tiny"] else (s["source"] or "-")
        click.echo(f"{s['name']:<16} {state:<11} {kind:<10} {human_size(s['size_bytes']):>9}  "
                   f"{s['path']}")


@models.command("fetch")
@click.argument("name", default="published", type=click.Choice(["published", "tiny"]))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fetch_cmd(name: str, quiet: bool) -> None:
    """Download the published set into the cache (resuming), or generate the tiny one.

    Prints the set's folder on stdout when it is ready.
    """
    from virnucpro.models.published import fetch_published
    from virnucpro.models.tiny.build import ensure_tiny

    model_set = ensure_tiny() if name == "tiny" else fetch_published(progress=not quiet)
    if not quiet:
        click.echo(f"model set {model_set.name!r} is ready", err=True)
    click.echo(str(model_set.root))


@models.command("verify")
@click.argument("spec", metavar="NAME|PATH")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def verify_cmd(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Recompute every file's hash against the set's manifest (and the published ids), then
    open every file through the loaders `predict` uses: the config, the tokenizer (a probe
    encoding), each checkpoint's keys and shapes against its architecture (weights mapped, not
    read), the classifiers.

    Exits with status 4 when a file is missing, changed, corrupt or would not load.
    """
    from virnucpro.models.loadcheck import load_problems
    from virnucpro.models.set_checks import verify_set
    from virnucpro.models.sets import resolve_model_set

    # Not checked on resolving: a trained set's stale links are problems to report here.
    model_set = resolve_model_set(spec, fetch_missing=False, check=False)
    problems = verify_set(model_set) + load_problems(model_set)
    if as_json:
        click.echo(json.dumps({"name": model_set.name, "root": str(model_set.root),
                               "ok": not problems, "problems": problems}, indent=2))
    elif problems:
        for problem in problems:
            click.echo(problem)
    else:
        click.echo(f"ok: {len(model_set.files())} files verified and loaded in {model_set.root}")
    if problems:
        click.echo(f"model set {model_set.name!r}: {len(problems)} problem(s)", err=True)
        ctx.exit(ModelError.exit_code)


@models.command("import")
@click.argument("src", metavar="DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="Name of the set in the cache (default: `published` for the "
                             "published files, else the folder's name).")
def import_cmd(src: Path, name: str | None) -> None:
    """Copy (or hard-link) a folder's model files into the cache, with a manifest, once every
    file loads (as `models verify` loads them: a set that would fail at run time is refused).

    DIR holds dnabert-s/, esm2_*.pt with its -contact-regression.pt, and 300_model.pth and/or
    500_model.pth; other files are ignored. A trained set's links to its base set are followed:
    the imported set holds real files. Prints the new set's folder on stdout.
    """
    from virnucpro.models.set_import import import_set

    model_set = import_set(src, name)
    click.echo(f"imported {len(model_set.files())} files as {model_set.name!r}"
               f"{' (tiny set)' if model_set.is_tiny else ''}", err=True)
    click.echo(str(model_set.root))


@models.command("path")
@click.argument("spec", metavar="[NAME]", required=False)
def path_cmd(spec: str | None) -> None:
    """Print the cache folder, or the folder of a set (NAME may also be a path)."""
    from virnucpro.models.cache import cache_root
    from virnucpro.models.sets import resolve_model_set

    if spec is None:
        click.echo(str(cache_root()))
    else:
        click.echo(str(resolve_model_set(spec, fetch_missing=False, check=False).root))
