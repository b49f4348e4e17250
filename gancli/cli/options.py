"""Options shared by commands that take any config field as --field-name VALUE."""

from __future__ import annotations

from gancli.errors import ConfigError


def extra_options(args: list[str]) -> dict[str, str]:
    """Turn leftover '--field-name value', '--field-name=value' and '--no-flag' into config overrides."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"Unexpected argument '{arg}'.")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            elif key.startswith("no-"):
                key, value = key[3:], "false"
            else:
                value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out
