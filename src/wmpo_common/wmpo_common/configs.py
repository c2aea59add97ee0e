"""Job configs (dataclasses): their one error type, and how a job that continues a checkpoint takes
the checkpoint's architecture instead of ignoring an option that contradicts it.

  config = continued_config(config, checkpoint_architecture(model), path, "world model")
"""

import dataclasses


class ConfigError(ValueError):
    """A config that does not fit: a file that does not fit its dataclass, or options that conflict
    with the checkpoint a job continues; the text names the fields (and the values)."""


def field_default(cls, name: str):
    """The default of dataclass ``cls``'s field ``name`` (its default_factory's value)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def continued_config(config, checkpoint: dict, path, what: str, conflicts: list[str] = ()):
    """``config`` with the ``checkpoint``'s values ({field: the checkpoint's value}) of the checkpoint
    at ``path`` that it continues. A field set to something else than both its dataclass default and
    the checkpoint's value is refused, as are the ``conflicts`` the caller found itself: ConfigError
    naming each field with both values ("{field} {option} (the checkpoint's: {value})")."""
    found = [
        f"{name} {getattr(config, name)!r} (the checkpoint's: {value!r})"
        for name, value in checkpoint.items()
        if getattr(config, name) != value and getattr(config, name) != field_default(type(config), name)
    ]
    found += list(conflicts)
    if found:
        raise ConfigError(
            f"{path} fixes the {what}'s architecture; conflicting options: {'; '.join(found)}. "
            "Leave them out to continue the checkpoint as it is."
        )
    return dataclasses.replace(config, **checkpoint)
