"""The option table (virnucpro/options.py) as click options, and a --help written in sections.

`table_options(command)` decorates a command with the table's options that it takes, each
spelled as that command needs it: predict shows the defaults; submit sends only what was
asked for (the daemon fills in the defaults: its click defaults are None, a flag that is on by
default becomes `--no-...`); rescore's defaults are the run's (`none_as` asks for None).
`GroupedCommand` writes the options under the headings of `options.GROUPS`, as geNomad's
rich-click option groups do, with plain click.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from virnucpro.options import GROUPS, OPTIONS, RESCORE, SUBMIT, Option

F = Callable[..., Any]
OTHER = "Other options"


class GroupedOption(click.Option):
    """A click option that knows its --help heading (a key of GROUPS) and, for a default of
    None, what that default means."""

    def __init__(self, *args: Any, group: str | None = None, default_text: str = "",
                 **kwargs: Any) -> None:
        if default_text:
            kwargs["show_default"] = default_text
        super().__init__(*args, **kwargs)
        self.group = group
        self.default_text = default_text

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None or not self.default_text:
            return record
        # click writes a text default in parentheses: [default: (its call)]
        opts, text = record
        return opts, text.replace(f"[default: ({self.default_text})", f"[default: {self.default_text}")


def grouped(group: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A command's own option (not in the table) under a --help heading."""
    return click.option(*decls, cls=GroupedOption, group=group, **kwargs)


class GroupedCommand(click.Command):
    """A command whose --help lists its options under headings, in the order of GROUPS, those
    without one (--help) last."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {heading: [] for heading in GROUPS.values()}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                heading = GROUPS.get(getattr(param, "group", None) or "", OTHER)
                sections.setdefault(heading, []).append(record)
        for heading, records in sections.items():
            if records:
                with formatter.section(heading):
                    formatter.write_dl(records)


def _to_int(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    return None if value is None else int(value)


def _none_as(option: Option, word: str = "", as_none: bool = False
             ) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """The parse of a number option whose None is asked for by a word: rescore's 'call' (kept
    as the word), or `Option.word` ('auto', given as None)."""
    word = word or option.none_as

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None or value == word:
            return None if as_none else value
        try:
            number = option.type(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is neither a number nor {word!r}") from None
        if (problem := option.problem(number)):
            raise click.BadParameter(problem)
        return number
    return parse


def _click_type(option: Option) -> click.ParamType | type:
    if option.choices:
        return click.Choice([str(c) for c in option.choices])
    if option.min is not None or option.max is not None:
        kind = click.IntRange if option.type is int else click.FloatRange
        return kind(min=option.min, max=option.max)
    return option.type


def click_option(option: Option, command: str) -> Callable[[F], F]:
    """One table option as `command` spells it."""
    words = option.help_for.get(command)  # the command's own, whole (its default said)
    kwargs: dict[str, Any] = {"cls": GroupedOption, "group": option.group, "hidden": option.hidden,
                              "metavar": option.metavar}
    flag, bare = option.long_flag, option.long_flag.removeprefix("--")
    # On submit the default is the daemon's, on rescore the run's: only what is given counts.
    given_only = command in (SUBMIT, RESCORE)
    if option.type is bool:
        if given_only and option.default:  # only its "no" can be asked for: --no-report
            decls: tuple[str, ...] = ("--no-" + bare, "no_" + option.name)
        elif option.negatable and not given_only:
            decls = (f"{flag}/--no-{bare}", option.name)
            kwargs.update(default=option.default, show_default=True)
        else:
            decls = (flag, option.name)
        return click.option(*decls, is_flag=True, help=words or option.help, **kwargs)
    kwargs["type"] = _click_type(option)
    if option.word:  # a number, or the word for its default
        kwargs.update(type=str, callback=_none_as(option, option.word, as_none=True))
    if option.choices and option.type is int:
        kwargs["callback"] = _to_int
    if not given_only:
        default = option.default
        kwargs.update(default=str(default) if option.choices and default is not None else default,
                      show_default=default is not None, default_text=option.default_text)
    else:
        kwargs["default"] = None
        if command == RESCORE and option.none_as:
            kwargs.update(type=str, callback=_none_as(option),
                          metavar=f"{option.metavar}|{option.none_as}")
            words = words or (f"{option.help.rstrip('.')} ('{option.none_as}': "
                              f"{option.default_text}).")
        own_words = option.help_for.get(command)  # they say the default themselves
        kwargs["default_text"] = "" if own_words else "the run's" if command == RESCORE else (
            option.default_text or str(option.default))
    return click.option(flag, option.name, help=words or option.help, **kwargs)


def table_options(command: str, *only: str,
                  table: Iterable[Option] = OPTIONS) -> Callable[[F], F]:
    """Decorate a command with the table's options that it takes (or those of `only`), in
    table order."""
    chosen = [o for o in table if command in o.commands and (not only or o.name in only)]

    def decorate(func: F) -> F:
        for option in reversed(chosen):  # click lists the decorator applied last first
            func = click_option(option, command)(func)
        return func
    return decorate


def asked(values: dict, table: Iterable[Option] = OPTIONS) -> dict:
    """Submit's options that were given on its command line, by name, from click's values
    (which it pops): a flag when it differs from its default, any other when not None."""
    options: dict = {}
    for option in table:
        if SUBMIT not in option.commands:
            continue
        if option.type is bool and option.default:
            if values.pop("no_" + option.name, False):
                options[option.name] = False
            continue
        value = values.pop(option.name, None)
        if value is not None and (option.type is not bool or value != option.default):
            options[option.name] = value
    return options
