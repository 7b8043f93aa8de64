"""The ApiVersionHash a deploy passes: a SHA-256 of what a published version of the function holds.

SAM names an AutoPublishAlias version after the function's code location, its environment (with
parameter references unresolved) and its memory only, so a change of layer, of SnapStart inside an
Fn::If or of a parameter value publishes nothing. Given AutoPublishCodeSha256, SAM names the version
after that value instead (its first 10 characters), so this hash covers everything a version holds:

- every file of the function's code folder and of each layer folder it uses (no bytecode caches);
- the function's definition (Globals.Function and its own properties, less what belongs to the
  alias, the role or the tags: Events, Policies, Tags, AutoPublishAlias,
  ProvisionedConcurrencyConfig...) and the definitions of its layer resources;
- the value of every parameter those definitions use, directly or through a condition, and the
  mappings they look values up in.

`--parameter-overrides` prints the environment's samconfig.toml overrides with the hash added, for
`sam deploy --parameter-overrides`: given that option, SAM CLI ignores samconfig's overrides rather
than merging the two (aws/aws-sam-cli issue 2380), so both have to be passed together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from localstage.cfn import TemplateError, load_template
from locate import SAMCONFIG, TEMPLATE, LocateError, samconfig_environment

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

# The longest stack name every fixed-length name of template.yaml leaves room for: EventBridge rule
# names (`<stack>-sync-schedule`) and function names (`<stack>-warmer`) may have 64 characters.
# tests/template/test_updates.py derives the same figure from the template.
MAX_STACK_NAME_LENGTH: Final = 50
# Function properties that configure the alias, the role, the triggers or the tags: none of them is
# part of a published version.
_NOT_IN_A_VERSION: Final = frozenset(
    {
        "Events",
        "Policies",
        "Tags",
        "PropagateTags",
        "AutoPublishAlias",
        "AutoPublishCodeSha256",
        "ProvisionedConcurrencyConfig",
        "DeploymentPreference",
    }
)
_SUB_NAME: Final = re.compile(r"\$\{([A-Za-z0-9:]+)[.}]")


class VersionHashError(Exception):
    """The template or samconfig.toml cannot give a hash; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class DeploySettings:
    """What a samconfig.toml environment's deploy section says."""

    stack_name: str
    overrides: dict[str, str]


def read_deploy_settings(samconfig: Path, config_env: str) -> DeploySettings:
    """Stack name (refused when too long for the template) and parameter overrides of one
    samconfig.toml environment."""
    try:
        environment = samconfig_environment(config_env, samconfig)
    except LocateError as exc:
        raise VersionHashError(str(exc)) from exc
    stack_name, overrides = environment.stack_name or "", environment.parameter_overrides
    if len(stack_name) > MAX_STACK_NAME_LENGTH:
        raise VersionHashError(
            f"{samconfig} [{config_env}.deploy.parameters] stack_name {stack_name!r} has "
            f"{len(stack_name)} characters; the template's function and schedule names leave "
            f"room for {MAX_STACK_NAME_LENGTH} at most"
        )
    return DeploySettings(stack_name, overrides)


def hashed_functions(template: Mapping[str, Any]) -> dict[str, str]:
    """Parameter name -> logical id of each function whose AutoPublishCodeSha256 is a Ref to it."""
    found: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        sha = resource.get("Properties", {}).get("AutoPublishCodeSha256")
        if isinstance(sha, dict) and isinstance(sha.get("Ref"), str):
            found[sha["Ref"]] = logical_id
    return found


def version_hash(
    template: Mapping[str, Any], function: str, overrides: Mapping[str, str], base_dir: Path
) -> str:
    """SHA-256 (hex) of the function's code, layers, definition and the parameter values it uses."""
    resources = template["Resources"]
    function_node = {
        part: {key: value for key, value in node.items() if key not in _NOT_IN_A_VERSION}
        for part, node in (
            ("globals", template.get("Globals", {}).get("Function", {})),
            ("properties", resources[function].get("Properties", {})),
        )
    }
    layer_ids = sorted(
        name
        for name in used_names(function_node, template).refs
        if resources.get(name, {}).get("Type") == "AWS::Serverless::LayerVersion"
    )
    material = {"function": function_node, "layers": {name: resources[name] for name in layer_ids}}
    used = used_names(material, template)
    digest = hashlib.sha256()
    folders = [resources[function]["Properties"]["CodeUri"]]
    folders += [resources[name]["Properties"]["ContentUri"] for name in layer_ids]
    for folder in folders:
        for relative, data in _files(base_dir / str(folder)):
            digest.update(f"{folder}/{relative}\0{len(data)}\0".encode())
            digest.update(data)
    declared = template.get("Parameters", {})
    outputs = hashed_functions(template)
    values = {
        name: overrides.get(name, str(declared[name].get("Default", "")))
        for name in sorted(used.refs)
        if name in declared and name not in outputs
    }
    mappings = {name: template.get("Mappings", {})[name] for name in sorted(used.mappings)}
    document = {"material": material, "parameters": values, "mappings": mappings}
    digest.update(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Used:
    """Names (parameters, resources, pseudo parameters) and mappings a template node depends on."""

    refs: frozenset[str]
    mappings: frozenset[str]


def used_names(node: Any, template: Mapping[str, Any]) -> Used:
    """Names a node refers to (Ref, Fn::Sub, through conditions) and the mappings it looks up."""
    conditions = template.get("Conditions", {})
    refs: set[str] = set()
    mappings: set[str] = set()
    seen: set[str] = set()

    def condition(name: object) -> None:
        if isinstance(name, str) and name in conditions and name not in seen:
            seen.add(name)
            walk(conditions[name])

    def walk(item: Any) -> None:
        if isinstance(item, list):
            for element in item:
                walk(element)
            return
        if not isinstance(item, dict):
            return
        if len(item) == 1:
            ((key, argument),) = item.items()
            if key == "Ref" and isinstance(argument, str):
                refs.add(argument)
            elif key == "Fn::Sub":
                refs.update(
                    _SUB_NAME.findall(argument if isinstance(argument, str) else argument[0])
                )
            elif key == "Fn::If":
                condition(argument[0])
            elif key == "Condition":
                condition(argument)
            elif key == "Fn::FindInMap" and isinstance(argument[0], str):
                mappings.add(argument[0])
        for value in item.values():
            walk(value)

    walk(node)
    return Used(frozenset(refs), frozenset(mappings))


def _files(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of every file sam build copies, less bytecode caches and dot files."""
    if not folder.is_dir():
        raise VersionHashError(f"{folder}: not a folder (named by the template)")
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        skipped = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
        if path.is_file() and not skipped and path.suffix != ".pyc":
            yield relative.as_posix(), path.read_bytes()


def overrides_argument(overrides: Mapping[str, str]) -> str:
    """`Name="value" ...` in the form sam deploy --parameter-overrides parses."""
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in overrides.values())
    return " ".join(f'{name}="{value}"' for name, value in zip(overrides, quoted, strict=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-env", required=True, help="samconfig.toml environment, e.g. dev")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG)
    parser.add_argument(
        "--parameter-overrides",
        action="store_true",
        help="print samconfig's overrides with the hash added, not the hash alone",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the hash (or the overrides for sam deploy); exit 2 with one line on bad input."""
    args = _parser().parse_args(argv)
    try:
        template = load_template(args.template)
        settings = read_deploy_settings(args.samconfig, args.config_env)
        overrides = dict(settings.overrides)
        for parameter, function in hashed_functions(template).items():
            overrides[parameter] = version_hash(
                template, function, settings.overrides, args.template.parent
            )
    except (TemplateError, VersionHashError) as exc:
        print(f"version_hash.py: {exc}", file=sys.stderr)
        return 2
    if args.parameter_overrides:
        print(overrides_argument(overrides))
    else:
        for parameter in hashed_functions(template):
            print(f"{parameter}={overrides[parameter]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
