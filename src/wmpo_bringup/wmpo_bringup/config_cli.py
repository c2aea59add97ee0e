"""A job's config dataclass is its command line (tyro): one flag per field (``--field-name``,
nested dataclasses as ``--grpo.group-size``), the field's comment or docstring as its help, its
default as the flag's default. ``--config FILE.yaml`` sets any fields first (keys = field names,
nested dataclasses as nested mappings; an unknown key or a value of the wrong type is refused),
and the other options override it. Defaults live in the dataclasses only.
"""

import dataclasses
import inspect
import json
import typing
from pathlib import Path

import tyro
import yaml
from typeguard import CollectionCheckStrategy, TypeCheckError, check_type
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from wmpo_common.configs import ConfigError

CONFIG_FLAG = "--config"
CONFIG_HELP = (
    "--config FILE.yaml sets fields first (keys = field names, nested dataclasses as nested mappings); "
    "the options below override it."
)


# A bare ``dict`` field (e.g. BCConfig.model_overrides) takes one YAML/JSON mapping on the command line.
REGISTRY = ConstructorRegistry()


@REGISTRY.primitive_rule
def _mapping_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    if info.type is not dict:
        return None

    def parse(args: list[str]) -> dict:
        value = yaml.safe_load(args[0])
        if not isinstance(value, dict):
            raise ValueError(f"expected a YAML mapping such as '{{hidden_size: 64}}', got {args[0]!r}")
        return value

    return PrimitiveConstructorSpec(
        nargs=1,
        metavar="YAML",
        instance_from_str=parse,
        is_instance=lambda value: isinstance(value, dict),
        str_from_instance=lambda value: [json.dumps(value)],
    )


def _coerce(value, hint):
    """YAML's spellings of what the field means: a float written 5e-5 (a string to YAML 1.1) or 1,
    a tuple written as a list."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else (hint,)
    if float in options and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


_SUPPRESS = typing.get_args(tyro.conf.Suppress[int])[1:]


def _suppressed(hint) -> bool:
    """A field a composite job fills in itself (wmpo_jobs.job_parts): not an option, nor a key."""
    return typing.get_origin(hint) is typing.Annotated and any(m in _SUPPRESS for m in hint.__metadata__)


def from_mapping(cls, values: dict, base=None, where: str = "config"):
    """An instance of dataclass ``cls``: ``base``'s values (default: the dataclass defaults, and
    tyro.MISSING for a required field, which the command line must then give) under ``values``.
    Nested dataclasses merge field by field. Unknown keys and wrongly typed values: ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {values!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if not _suppressed(hints[f.name])}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown fields {', '.join(unknown)} of {cls.__name__}; fields: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        name = field.name
        if base is not None:
            current = getattr(base, name)
        elif field.default is not dataclasses.MISSING:
            current = field.default
        elif field.default_factory is not dataclasses.MISSING:
            current = field.default_factory()
        else:
            current = tyro.MISSING
        if name not in values:
            out[name] = current
        elif dataclasses.is_dataclass(hints[name]):
            nested_base = current if dataclasses.is_dataclass(current) else None
            out[name] = from_mapping(hints[name], values[name], nested_base, f"{where}: {name}")
        else:
            value = _coerce(values[name], hints[name])
            try:
                check_type(value, hints[name], collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
            except TypeCheckError as error:
                raise ConfigError(f"{where}: {name}: {value!r} is not a {hints[name]} ({error})") from None
            out[name] = value
    return cls(**out)


def read_yaml(path: Path) -> dict:
    """A YAML file's mapping ({} for an empty file); ConfigError with the reason otherwise."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of field names to values, got {values!r}")
    return values


def load_config(cls, path: str | Path, base=None):
    """``cls`` from a YAML file of its fields (over ``base``, or the dataclass defaults)."""
    return from_mapping(cls, read_yaml(Path(path)), base, str(path))


def split_config_flag(args: list[str]) -> tuple[str | None, list[str]]:
    """(the --config FILE, the other arguments)."""
    rest, path = [], None
    iterator = iter(args)
    for arg in iterator:
        if arg == CONFIG_FLAG:
            path = next(iterator, None)
            if path is None:
                raise SystemExit(f"{CONFIG_FLAG} needs a YAML file")
        elif arg.startswith(CONFIG_FLAG + "="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return path, rest


def description(cls, default_file: Path | None = None) -> str:
    """The command's --help text above its options: the dataclass docstring and how --config works."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    default = f" Without --config: {default_file}." if default_file else ""
    return f"{doc}\n\n{CONFIG_HELP}{default}"


def parse_config(cls, args: list[str], prog: str, default_file: Path | None = None, base=None):
    """Build ``cls`` from command-line ``args``: ``--config FILE.yaml`` (or ``default_file``) over
    ``base`` (default: the dataclass defaults), the other options over them. A bad file exits
    with the reason."""
    path, rest = split_config_flag(list(args))
    path = path or default_file
    try:
        default = load_config(cls, path, base) if path else from_mapping(cls, {}, base)
    except ConfigError as error:
        raise SystemExit(f"{prog}: {error}") from None
    return tyro.cli(
        cls,
        args=rest,
        prog=prog,
        default=default,
        description=description(cls, default_file),
        registry=REGISTRY,
        config=(tyro.conf.PositionalMetavarFromFieldName,),
    )
