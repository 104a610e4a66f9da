"""Typed settings that state their own allowed values, and the one check that reads them.

A table of settings ([data], [train], a model class's Config) is a dataclass whose fields say what they
allow (`whole(128, 1, 50_000)`), so the bounds sit beside the default and nothing is guessed from a
default's type. `check_table` checks a TOML table against one: every refusal is one ConfigError line
naming the key, its value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import field

from .errors import ConfigError, is_number, is_whole, shown, shown_value

MAX_WHOLE = 100_000  # model widths and step counts: far above any sensible model, below a memory crash


def whole(default: int, low: int, high: int = MAX_WHOLE):
    return field(default=default, metadata={"whole": (low, high)})


def number(default: float, low: float, high: float, below_high: bool = False, what: str = "a number"):
    return field(default=default, metadata={"number": (low, high, below_high), "what": what})


def one_of(default: str, options, optional: bool = False):
    """One of `options`: names, or a function giving them when a value is checked (a registry)."""
    options = options if callable(options) else tuple(options)
    return field(default=default, metadata={"options": options, "optional": optional})


def counts(default, low: int, high: int):
    return field(default=default, metadata={"range": (low, high)})


def flag(default: bool):
    return field(default=default, metadata={"flag": True})


def texts():
    """None, or a non-empty list of captions."""
    return field(default=None, metadata={"texts": True})


def wholes(low: int, high: int):
    """None, or a non-empty list of whole numbers from low to high."""
    return field(default=None, metadata={"wholes": (low, high)})


def names():
    """None, or a table of names to names (a routed caption encoder's experts)."""
    return field(default=None, metadata={"names": True})


def check_table(table: str, schema, values: dict) -> dict:
    """`values` over the schema's defaults, each checked; unknown keys refused."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"unknown key '{shown(key, 40)}' in [{table}]; allowed: {', '.join(fields)}")
    out = {name: copy.deepcopy(values.get(name, f.default)) for name, f in fields.items()}
    for name, f in fields.items():
        check_rule(f"[{table}] {name} = {shown_value(out[name])}", out[name], f.metadata)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def check_rule(where: str, value, rule: dict) -> None:
    if value is None and (rule.get("optional") or {"texts", "names", "range", "wholes"} & set(rule)):
        return
    if "texts" in rule:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}; allowed: a list of captions")
    elif "names" in rule:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{where}; allowed: a table of names")
    elif "wholes" in rule:
        low, high = rule["wholes"]
        if not isinstance(value, list) or not value or not all(is_whole(v, low, high) for v in value):
            raise ConfigError(f"{where}; allowed: a list of whole numbers from {low} to {high}")
    elif "flag" in rule:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}; allowed: true or false")
    elif "options" in rule:
        options = rule["options"]() if callable(rule["options"]) else rule["options"]
        if not isinstance(value, str) or value not in options:
            raise ConfigError(f"{where}; allowed: {', '.join(options)}")
    elif "whole" in rule:
        low, high = rule["whole"]
        if not is_whole(value, low, high):
            raise ConfigError(f"{where}; allowed: a whole number from {low:,} to {high:,}")
    elif "number" in rule:
        low, high, below_high = rule["number"]
        if not is_number(value, low, high) or (below_high and value == high):
            span = f"in [{low:g}, {high:g})" if below_high else f"from {low:g} to {high:g}"
            raise ConfigError(f"{where}; allowed: {rule['what']} {span}")
    elif "range" in rule:
        low, high = rule["range"]
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(is_whole(v, low, high) for v in value)
        )
        if not ok or value[0] > value[1]:
            raise ConfigError(f"{where}; allowed: [lowest, highest], whole numbers from {low} to {high}")
