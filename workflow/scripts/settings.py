"""The option strings of the workflow's config, checked before any job runs.

`options` goes to both `virnucpro predict` and `virnucpro submit`, so it may hold only the
options the two share; `predict.extra` goes to predict alone, and may hold anything but what
the workflow sets itself (the output folder, the model set, the chunk size, --force and
--resume, the report, the devices, precision and threads that have their own keys). A flag in
the wrong place fails the workflow at once with a `SettingsError`, instead of a job later.
Standard library only, like the other scripts.
"""

from __future__ import annotations

import shlex

# What `predict` and `submit` both take, besides what the workflow sets.
SHARED = ("--threshold", "--min-length", "--region-gap", "--region-min-p", "--min-region-length",
          "--save-embeddings", "--rename-duplicates")
# Set by the workflow's rules or by their own config keys.
_OUTDIR = "the output folder is <outdir>/<sample>"
_AGAIN = "the workflow chooses --force or --resume itself"
_REPORT = "the report is one of the workflow's outputs"
SET_BY_THE_WORKFLOW = {
    "-o": _OUTDIR, "--outdir": _OUTDIR,
    "--models": "use the `models` key", "--chunk-size": "use the `chunk_size` key",
    "--force": _AGAIN, "--resume": _AGAIN, "--report": _REPORT, "--no-report": _REPORT,
    "--json": "the job's log holds what the run says",
    "--devices": "use the `predict.devices` key", "--precision": "use the `predict.precision` key",
    "--threads": "use the `predict.threads` key",
}


class SettingsError(ValueError):
    """An option string of the config that the workflow cannot pass on."""


def flags(text: str) -> list[str]:
    """The option words of `text` (`--x` of `--x=1` too), in order."""
    return [word.split("=", 1)[0] for word in shlex.split(text) if word.startswith("-")]


def check_options(text: str, key: str = "options") -> list[str]:
    """`text`, for both predict and submit, split into words; SettingsError unless every flag
    is one they share."""
    words = _split(text, key)
    wrong = [f for f in flags(text) if f not in SHARED]
    if wrong:
        raise SettingsError(
            f"config key {key}: {', '.join(wrong)} cannot go there: it holds the options "
            f"that predict and submit share ({', '.join(SHARED)}); "
            + "; ".join(f"{f}: {SET_BY_THE_WORKFLOW[f]}" for f in wrong
                        if f in SET_BY_THE_WORKFLOW)
            + ("" if all(f in SET_BY_THE_WORKFLOW for f in wrong)
               else "; engine options go in predict.extra"))
    return words


def check_extra(text: str, key: str = "predict.extra") -> list[str]:
    """`text`, for predict alone, split into words; SettingsError naming each flag the
    workflow sets itself."""
    words = _split(text, key)
    wrong = [f for f in flags(text) if f in SET_BY_THE_WORKFLOW]
    if wrong:
        raise SettingsError(f"config key {key}: "
                            + "; ".join(f"{f}: {SET_BY_THE_WORKFLOW[f]}" for f in wrong))
    return words


def _split(text: str, key: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise SettingsError(f"config key {key}: {text!r}: {exc}") from exc
