"""Reading input files and wording what is wrong with them, the same way for every file.

`read_toml` reads a TOML file into a pydantic model; `describe_validation_error` and
`problem_text` turn pydantic's errors into problems that name the key or field; `Text` and
`Moment` are the field types the record files (orders, maintenance windows) share. No
SQLAlchemy here: the collectors read their tag maps through this module too.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, StringConstraints, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from transactional.errors import FileProblems

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Describe = Callable[[Any, ErrorDetails], str]
MOMENT_EXAMPLE = "2026-03-02T06:00:00+01:00"


# -- wording ----------------------------------------------------------------------------------

def problem_text(error: ErrorDetails, fields: Sequence[str] = ()) -> str:
    """What one pydantic error says is wrong, in the plant's words, without where it is;
    `fields` (of a flat record) are listed after an unknown field."""
    if error["type"] == "missing":
        return "missing field"
    if error["type"] == "extra_forbidden":
        return f"unknown field (fields: {', '.join(fields)})" if fields else \
            "unknown field (misspelt?)"
    return error["msg"].removeprefix("Value error, ")


def _code_label(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("code"), str):
        return f" ({node['code']})"
    return ""


def describe_validation_error(raw: Any, error: ErrorDetails,
                              label: Callable[[Any], str] = _code_label,
                              fields: Sequence[str] = ()) -> str:
    """'machines[2] (N-L1-M3).signals[0].kind: Input should be ...' from a pydantic error;
    `label` names a list entry (by default its code)."""
    parts: list[str] = []
    node = raw
    for item in error["loc"]:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and item < len(node) else None
            parts.append(f"[{item}]{label(node)}")
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    key = "".join(parts) or "(top level)"
    return f"{key}: {problem_text(error, fields)}"


# -- reading ----------------------------------------------------------------------------------

def read_text(path: Path, error: type[FileProblems], *, encoding: str = "utf-8") -> str:
    """The file's text; `error` naming why when it cannot be read or is not UTF-8."""
    try:
        return path.read_text(encoding=encoding)
    except OSError as exc:
        raise error(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise error(path, [f"not UTF-8 text: {exc.reason}"]) from None


def parse_toml(path: Path, error: type[FileProblems]) -> dict[str, Any]:
    """The file's TOML as it stands, before any check; `error` for a syntax error."""
    try:
        return tomllib.loads(read_text(path, error))
    except tomllib.TOMLDecodeError as exc:
        raise error(path, [f"TOML syntax: {exc}"]) from None


def validated(model: type[M], raw: Any, path: Path, error: type[FileProblems],
              describe: Describe = describe_validation_error) -> M:
    """`raw` checked as a `model`; `error` listing every problem pydantic finds."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(path, [describe(raw, e) for e in exc.errors()]) from None


def read_toml(path: Path, model: type[M], error: type[FileProblems],
              describe: Describe = describe_validation_error) -> M:
    """Read and check a .toml file as a `model`; raises `error` listing every problem."""
    if path.suffix.lower() != ".toml":
        raise error(path, [f"unknown file type {path.suffix!r}: use .toml"])
    return validated(model, parse_toml(path, error), path, error, describe)


# -- fields of record files (CSV cells, JSON values, XML text) ------------------------------

def shown(value: object) -> str:
    """A value as the file gave it: text quoted, numbers as they are."""
    return repr(value) if isinstance(value, str) else str(value)


def plain_text(value: object) -> str | None:
    """Text (a number counts, as in an id), stripped; None when blank or absent."""
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise ValueError(f"{value!r} is not text")
    text = str(value).strip() if value is not None else ""
    return text or None


def moment(value: object) -> dt.datetime | None:
    """A date and time with its offset; a bare date or local time is refused rather than
    guessed, since the plant, the other system and the MES may sit in different time zones."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a date and time (like {MOMENT_EXAMPLE})")
    text = plain_text(value)
    if text is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time (like {MOMENT_EXAMPLE})") from None
    if stamp.utcoffset() is None:
        raise ValueError(f"{text!r} needs a date, a time and a time zone offset, like "
                         f"{MOMENT_EXAMPLE}")
    return stamp


def required(read: Callable[[Any], T | None]) -> Callable[[Any], T]:
    """`read`, with a blank or absent value reported as a missing field."""
    def check(value: Any) -> T:
        found = read(value)
        if found is None:
            raise PydanticCustomError("missing", "missing field")
        return found
    return check


Text = Annotated[str | None, BeforeValidator(plain_text)]
RequiredText = Annotated[str, BeforeValidator(required(plain_text))]
# An identifier a file gives (an order id, a CMMS window id): at most 64 characters, as the
# database's codes.
RequiredCode = Annotated[str, BeforeValidator(required(plain_text)),
                         StringConstraints(max_length=64)]
Moment = Annotated[dt.datetime | None, BeforeValidator(moment)]
RequiredMoment = Annotated[dt.datetime, BeforeValidator(required(moment))]
