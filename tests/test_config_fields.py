"""pgrad.config.field_kind: one parser of Config fields for Config's checks, the options of
``pgrad train`` and ``pgrad compare --set``."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from pgrad.config import Config, field_kind
from pgrad.errors import PgradError
from pgrad.tools.cli import _FieldAction


@pytest.mark.parametrize(("annotation", "text", "value"), [
    ("int", "12", 12), ("int | None", "none", None), ("int | None", "3", 3),
    ("float", "3e-3", 3e-3), ("float | None", "None", None),
    ("bool", "false", False), ("bool", "On", True), ("str", " tanh ", "tanh"),
    ("tuple[int, ...]", "32x16", (32, 16)), ("tuple[int, ...]", "32,16", (32, 16)),
    ("tuple[int, ...]", "32 16", (32, 16)), ("tuple[str, ...]", "a,b c", ("a", "b", "c")),
    ("dict[str, Any]", "a=1 b=x c=[1,2] d=true e=null", {"a": 1, "b": "x", "c": [1, 2],
                                                          "d": True, "e": None}),
    ("dict[str, Any]", '{"a": 1, "b": "x y"}', {"a": 1, "b": "x y"}),
    ("dict[str, Any] | None", "none", None),
])
def test_parse_and_format_round_trip(annotation: str, text: str, value) -> None:
    kind = field_kind(annotation)
    assert kind.parse(text) == value
    assert kind.parse(kind.format(value)) == value
    kind.check("x", value)


@pytest.mark.parametrize(("annotation", "text"), [
    ("int", "1.5"), ("int", "9" * 60), ("float", "abc"), ("bool", "maybe"),
    ("tuple[int, ...]", "32xa"), ("dict[str, Any]", "novalue"), ("dict[str, Any]", "[1]"),
    ("int", "none"),
])
def test_bad_texts_are_value_errors(annotation: str, text: str) -> None:
    with pytest.raises(ValueError):
        field_kind(annotation).parse(text)


@pytest.mark.parametrize(("annotation", "value"), [
    ("int", True), ("int", 1.0), ("float", "1"), ("bool", 1), ("str", None),
    ("tuple[int, ...]", [1, 2]), ("tuple[int, ...]", (1, "2")), ("tuple[str, ...]", (1,)),
    ("dict[str, Any]", {1: 2}), ("dict[str, Any]", [("a", 1)]),
])
def test_check_refuses_other_types(annotation: str, value) -> None:
    with pytest.raises(PgradError, match="must be"):
        field_kind(annotation).check("x", value)


def test_every_config_field_has_a_kind() -> None:
    for f in dataclasses.fields(Config):
        field_kind(str(f.type))
    with pytest.raises(TypeError):
        field_kind("list[float]")


def test_config_checks_types_with_the_same_parser() -> None:
    with pytest.raises(PgradError, match="num_envs must be int"):
        Config(num_envs=2.0)  # type: ignore[arg-type]
    with pytest.raises(PgradError, match="hidden_sizes must be tuple"):
        Config(hidden_sizes=[64])  # type: ignore[arg-type]


def option_parser() -> argparse.ArgumentParser:
    """Options of the two container kinds other fields will use."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    for flag, annotation in (("--env-kwargs", "dict[str, Any]"),
                             ("--env-package", "tuple[str, ...]"),
                             ("--hidden-sizes", "tuple[int, ...]")):
        parser.add_argument(flag, action=_FieldAction, kind=field_kind(annotation),
                            nargs="+", default=argparse.SUPPRESS)
    return parser


def test_command_line_dicts_and_string_tuples_accumulate() -> None:
    args = option_parser().parse_args([
        "--env-kwargs", "a=1", "b=x", "--env-kwargs", "c=[1, 2]", "a=2.5",
        "--env-package", "ale_py", "--env-package", "minatar", "extra",
        "--hidden-sizes", "8", "--hidden-sizes", "16", "16"])
    assert args.env_kwargs == {"a": 2.5, "b": "x", "c": [1, 2]}
    assert args.env_package == ("ale_py", "minatar", "extra")
    assert args.hidden_sizes == (16, 16)  # a width list is replaced, not extended


def test_a_bad_command_line_value_names_the_option() -> None:
    with pytest.raises(argparse.ArgumentError, match="--env-kwargs"):
        option_parser().parse_args(["--env-kwargs", "novalue"])


def test_the_choice_lists_in_constants_match_their_implementations() -> None:
    from pgrad import constants, encoders, networks, spaces

    assert constants.CNN_ARCHS == networks.CNN_ARCHS
    assert constants.ENCODERS == encoders.ENCODERS
    assert constants.CHANNEL_ORDERS == spaces.CHANNEL_ORDERS
    assert tuple(networks.ACTIVATIONS) == constants.ACTIVATION_NAMES
