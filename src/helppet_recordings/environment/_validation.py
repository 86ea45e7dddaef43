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
    """Return a subclass of ``model`` that reads only its keyword arguments, no environment."""

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
    """Validate ``values`` (by environment variable name) into ``model``, and nothing else."""
    validated = _mapping_only(model)(**values)
    return model.model_construct(**dict(validated))


def _env_name(field: str, info: FieldInfo) -> str:
    """Return the environment variable a settings field is read from (upper case)."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
        if names:
            return names[-1].upper()
    return field.upper()


def _problems(
    exc: pydantic.ValidationError, model: type[pydantic.BaseModel]
) -> list[dict[str, str]]:
    """Each validation problem with the variable to fix; rejected values are never quoted.

    A value may be a secret or a URL with a password in it.
    """
    variables = {
        name: _VARIABLES.get(name, _env_name(name, info))
        for name, info in model.model_fields.items()
    }
    variables.update({variable: variable for variable in variables.values()})
    problems: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        head = str(error["loc"][0]) if error["loc"] else "environment"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append({"variable": variables.get(head, head), "message": message})
    return problems


def _configuration_error(problems: list[dict[str, str]]) -> ConfigurationError:
    text = "; ".join(f"{problem['variable']}: {problem['message']}" for problem in problems)
    return ConfigurationError(f"Invalid configuration: {text}", errors=problems)
