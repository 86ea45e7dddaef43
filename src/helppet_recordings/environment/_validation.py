"""Validating settings from a mapping, and naming the variable behind each problem."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from helppet_recordings.environment.variables import _VARIABLES, ConfigurationError

_Settings = TypeVar("_Settings", bound=BaseSettings)


@functools.cache
def _mapping_only(model: type[_Settings]) -> type[_Settings]:
    """Return a subclass of ``model`` that reads only its keyword arguments, no environment.

    ``model_validate`` would not do: pydantic validates a model with its own
    ``__init__`` through that ``__init__``, which reads the environment.
    """

    def sources(
        cls: type[BaseSettings],
        /,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_others: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    namespace = {"settings_customise_sources": classmethod(sources), "__module__": __package__}
    return type(f"_MappingOnly{model.__name__}", (model,), namespace)


def _from_mapping(model: type[_Settings], values: Mapping[str, Any]) -> _Settings:
    """Validate ``values`` (by field or variable name) into ``model``, and nothing else.

    Raises :class:`ConfigurationError` naming each variable that is wrong.
    """
    try:
        validated = _mapping_only(model)(**values)
    except pydantic.ValidationError as exc:
        problems = _problems(exc, model)
    else:
        return model.model_construct(**dict(validated))
    raise _configuration_error(
        problems
    )  # outside the except: the error quoting values is not chained


def _env_name(field: str, info: FieldInfo) -> str:
    """Return the environment variable a settings field is read from (upper case)."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
        if names:
            return names[-1].upper()
    return field.upper()


def _variables(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """Map each field of ``model`` (by name and by variable) to its variable."""
    variables = {
        name: _VARIABLES.get(name, _env_name(name, info))
        for name, info in model.model_fields.items()
    }
    variables.update({variable: variable for variable in variables.values()})
    return variables


def _problems(
    exc: pydantic.ValidationError, model: type[pydantic.BaseModel]
) -> list[dict[str, str]]:
    """Each validation problem with the variable to fix; rejected values are never quoted.

    A value may be a secret or a URL with a password in it. A problem inside
    a nested settings model (``recording``) names that model's variable.
    """
    variables = _variables(model)
    nested = {
        name: _variables(info.annotation)
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, pydantic.BaseModel)
    }
    problems: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(part) for part in error["loc"]]
        if len(loc) > 1 and loc[0] in nested:
            head = nested[loc[0]].get(loc[1], loc[1])
        elif loc:
            head = variables.get(loc[0], loc[0])
        else:
            head = "environment"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append({"variable": head, "message": message})
    return problems


def _configuration_error(problems: list[dict[str, str]]) -> ConfigurationError:
    """One error for all ``problems``: ``details.variable`` is the first to fix, ``errors`` all.

    Raise it outside the ``except`` that caught pydantic's error: chained, that
    error (which quotes every rejected value) would reach a logged traceback.
    """
    text = "; ".join(f"{problem['variable']}: {problem['message']}" for problem in problems)
    return ConfigurationError(
        f"Invalid configuration: {text}", variable=problems[0]["variable"], errors=problems
    )
