"""Old option spellings that keep working without showing in --help, for both tools' commands.

click lists every name of an option in --help and has no hidden positional arguments; when an option is renamed (or
a positional becomes an option), scripts written against the old spelling must still run, while --help shows one
vocabulary. `AliasedOption` parses its `aliases` like its other names but leaves them out of the help line;
`LegacyArgument` is a positional argument that is left out of the usage line.
"""

from __future__ import annotations

import click


class AliasedOption(click.Option):
    """`click.option("--text", "-f", cls=AliasedOption, aliases=("--data",))`: --data parses as --text, --help shows
    only -f, --text."""

    def __init__(self, param_decls, *args, aliases: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__([*param_decls, *aliases], *args, **kwargs)
        self.aliases = tuple(aliases)

    def get_help_record(self, ctx: click.Context):
        shown, self.opts = self.opts, [name for name in self.opts if name not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


class LegacyArgument(click.Argument):
    """A positional argument kept for old command lines (e.g. `collect MODEL` before `-m/--model`); not in usage."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []
