"""Compile time: a pipeline file and its templates expanded into one tree with no ``${{ }}`` left.

Follows the docs pages "Template expressions" and "Templates" (https://learn.microsoft.com/azure/devops/pipelines/
process/templates): ``${{ expr }}`` as a whole value keeps the expression's type (a list stays a list), embedded in
text it becomes text; ``${{ if }}`` / ``${{ elseif }}`` / ``${{ else }}``, ``${{ each x in ... }}`` (a list's items,
or a mapping's ``key``/``value`` pairs) and ``${{ insert }}`` work as sequence items and as mapping keys; a
``- template: file.yml`` item in any list (steps, jobs, stages, variables) is replaced by the items of the template's
own list, expanded with its checked parameters; ``extends:`` takes the pipeline's body from a template. Template
paths are relative to the including file, ``/`` is the repository root. ``variables`` of a mapping are expanded
first and visible as ``variables.x`` to the rest of it. At most 100 template files and 100 levels, as on the service.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import parameters as params
from .expressions import Context, ExpressionError, truthy
from .expressions import to_text as _to_text
from .source import MDict, MList, PipelineError, load_file, mark, unsupported

MAX_FILES = 100
MAX_DEPTH = 100
_DIRECTIVE = re.compile(r"^\s*\$\{\{\s*(if|elseif|else|each|insert)\b(.*)\}\}\s*$", re.DOTALL | re.IGNORECASE)
_WHOLE = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.DOTALL)
_EACH = re.compile(r"^\s*([A-Za-z_]\w*)\s+in\s+(.+)$", re.DOTALL)
TEMPLATE_BODIES = ("stages", "jobs", "steps", "variables")


def split_embedded(text: str) -> list[tuple[bool, str]]:
    """Text cut into (is_expression, part); an expression runs from ``${{`` to the first ``}}`` outside quotes."""
    parts: list[tuple[bool, str]] = []
    position = 0
    while True:
        start = text.find("${{", position)
        if start < 0:
            break
        index, quoted = start + 3, False
        while index < len(text):
            char = text[index]
            if char == "'":
                quoted = not quoted
            elif not quoted and text.startswith("}}", index):
                break
            index += 1
        else:
            raise ExpressionError(f"${{{{ without }}}} in {text!r}")
        if start > position:
            parts.append((False, text[position:start]))
        parts.append((True, text[start + 3 : index]))
        position = index + 2
    if position < len(text):
        parts.append((False, text[position:]))
    return parts


class Expander:
    """Expands one pipeline: counts the template files it reads and resolves their paths."""

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.files = 0

    # ---- values --------------------------------------------------------------------------------------------

    def evaluate(self, expression: str, ctx: Context, node: Any) -> Any:
        try:
            return ctx.evaluate(expression)
        except ExpressionError as error:
            raise PipelineError(node, str(error)) from None

    def text(self, value: str, ctx: Context) -> Any:
        if "${{" not in value:
            return value
        whole = _WHOLE.match(value)
        try:
            parts = split_embedded(value)
        except ExpressionError as error:
            raise PipelineError(value, str(error)) from None
        if whole and len(parts) == 1:
            return mark(self.evaluate(whole.group(1), ctx, value), value)
        pieces = []
        for is_expression, part in parts:
            if not is_expression:
                pieces.append(part)
                continue
            result = self.evaluate(part, ctx, value)
            try:
                pieces.append(_to_text(result))
            except ExpressionError:
                raise PipelineError(value, f"${{{{{part}}}}} is a list or mapping and cannot be part of text") from None
        return mark("".join(pieces), value)

    def expand(self, node: Any, ctx: Context, here: Path, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise PipelineError(node, f"templates nest more than {MAX_DEPTH} levels deep")
        if isinstance(node, str):
            return self.text(node, ctx)
        if isinstance(node, list):
            return self._list(node, ctx, here, depth)
        if isinstance(node, dict):
            return self._mapping(node, ctx, here, depth)
        return node

    # ---- directives ----------------------------------------------------------------------------------------

    def _iterate(self, argument: str, ctx: Context, node: Any) -> tuple[str, list]:
        match = _EACH.match(argument)
        if not match:
            raise PipelineError(node, "${{ each }} must read ${{ each NAME in EXPRESSION }}")
        collection = self.evaluate(match.group(2), ctx, node)
        if collection in (None, ""):
            return match.group(1), []
        if isinstance(collection, dict):
            return match.group(1), [{"key": key, "value": value} for key, value in collection.items()]
        if isinstance(collection, list):
            return match.group(1), list(collection)
        raise PipelineError(node, f"${{{{ each }}}} needs a list or mapping, not {collection!r}")

    def _chain(self, kind: str, argument: str, state: str | None, ctx: Context, key: Any) -> tuple[bool, str | None]:
        """(take this branch?, new chain state) for if/elseif/else; state is None, 'open' or 'taken'."""
        if kind == "if":
            taken = truthy(self.evaluate(argument, ctx, key))
            return taken, "taken" if taken else "open"
        if state is None:
            raise PipelineError(key, f"${{{{ {kind} }}}} without an ${{{{ if }}}} right before it")
        if kind == "elseif":
            if state == "taken":
                return False, "taken"
            taken = truthy(self.evaluate(argument, ctx, key))
            return taken, "taken" if taken else "open"
        if argument.strip():
            raise PipelineError(key, "${{ else }} takes no expression")
        return state == "open", None

    def _list(self, node: list, ctx: Context, here: Path, depth: int) -> MList:
        out = mark([], node)
        state: str | None = None
        for item in node:
            directive = _DIRECTIVE.match(next(iter(item))) if isinstance(item, dict) and len(item) == 1 else None
            if directive:
                key, value = next(iter(item.items()))
                kind, argument = directive.group(1).lower(), directive.group(2)
                if kind in ("if", "elseif", "else"):
                    take, state = self._chain(kind, argument, state, ctx, key)
                    if take:
                        out.extend(self._list(_as_list(value), ctx, here, depth + 1))
                    continue
                state = None
                if kind == "insert":
                    raise PipelineError(key, "${{ insert }} belongs in a mapping, not in a list")
                name, elements = self._iterate(argument, ctx, key)
                for element in elements:
                    out.extend(self._list(_as_list(value), ctx.child(**{name: element}), here, depth + 1))
                continue
            state = None
            if isinstance(item, dict) and "template" in item:
                out.extend(self._template_item(item, ctx, here, depth))
                continue
            out.append(self.expand(item, ctx, here, depth + 1))
        return out

    def _mapping(self, node: dict, ctx: Context, here: Path, depth: int) -> MDict:
        out = mark({}, node)
        if "variables" in node:  # first, so the rest of the mapping sees them as variables.x
            out["variables"] = self.expand(node["variables"], ctx, here, depth + 1)
            ctx = ctx.child(variables={**(ctx.values.get("variables") or {}), **compile_time_values(out["variables"])})
        state: str | None = None
        for key, value in node.items():
            if key == "variables":
                continue
            directive = _DIRECTIVE.match(key)
            if not directive:
                state = None
                new_key = self.text(key, ctx)
                if not isinstance(new_key, str):
                    raise PipelineError(key, f"a mapping key must be text, not {new_key!r}")
                if new_key in out:
                    raise PipelineError(key, f"duplicate key {str(new_key)!r} after expansion")
                out[mark(new_key, key)] = self.expand(value, ctx, here, depth + 1)
                continue
            kind, argument = directive.group(1).lower(), directive.group(2)
            if kind in ("if", "elseif", "else"):
                take, state = self._chain(kind, argument, state, ctx, key)
                if take:
                    self._merge(out, self.expand(value, ctx, here, depth + 1), key)
                continue
            state = None
            if kind == "insert":
                if argument.strip():
                    raise PipelineError(key, "${{ insert }} takes no expression")
                self._merge(out, self.expand(value, ctx, here, depth + 1), key)
                continue
            name, elements = self._iterate(argument, ctx, key)
            for element in elements:
                self._merge(out, self.expand(value, ctx.child(**{name: element}), here, depth + 1), key)
        return out

    @staticmethod
    def _merge(out: dict, value: Any, key: Any) -> None:
        if value in (None, ""):
            return
        if not isinstance(value, dict):
            raise PipelineError(key, "a ${{ }} key in a mapping must hold a mapping")
        for name, item in value.items():
            out[name] = item

    # ---- templates -----------------------------------------------------------------------------------------

    def resolve_path(self, reference: Any, here: Path) -> Path:
        text = str(reference).strip()
        if "@" in text:
            raise unsupported(reference, f"template {text} from another repository (@alias)")
        if "${{" in text or "$(" in text:
            raise PipelineError(reference, f"template path {text!r} must be plain text after expansion")
        path = (self.repo_root / text.lstrip("/")) if text.startswith("/") else (here / text)
        return path

    def instantiate(self, reference: Any, given: Any, ctx: Context, here: Path, depth: int) -> tuple[str, Any, Path]:
        """(body kind, expanded body, template folder) of one template reference with its parameters."""
        path = self.resolve_path(reference, here)
        self.files += 1
        if self.files > MAX_FILES:
            raise PipelineError(reference, f"more than {MAX_FILES} template files are included")
        document = load_file(path, self.repo_root) if path.is_file() else None
        if document is None:
            raise PipelineError(reference, f"template {str(reference).strip()} not found (looked for {path})")
        if not isinstance(document, dict):
            raise PipelineError(document, "a template must be a mapping (parameters: plus steps/jobs/stages/variables)")
        if given not in (None, "") and not isinstance(given, dict):
            raise PipelineError(reference, "template parameters: must be a mapping")
        values = params.resolve(document.get("parameters"), dict(given or {}), reference)
        body_keys = [key for key in document if key != "parameters"]
        kinds = [key for key in body_keys if key in TEMPLATE_BODIES or key == "extends"]
        others = [key for key in body_keys if key not in kinds]
        if others:
            raise unsupported(others[0], f"key {others[0]!r} in a template ({path.name})")
        if len(kinds) != 1 and set(kinds) != {"variables", "stages"} and set(kinds) != {"variables", "jobs"}:
            raise PipelineError(document, f"template {path.name} must hold one of {', '.join(TEMPLATE_BODIES)}")
        inner = ctx.child(parameters=values)
        body = self.expand(mark({key: document[key] for key in kinds}, document), inner, path.parent, depth + 1)
        return (kinds[0] if len(kinds) == 1 else next(k for k in kinds if k != "variables")), body, path.parent

    def _template_item(self, item: dict, ctx: Context, here: Path, depth: int) -> list:
        extra = [key for key in item if key not in ("template", "parameters")]
        if extra:
            raise unsupported(extra[0], f"key {extra[0]!r} next to template:")
        reference = self.text(item["template"], ctx)
        given = self.expand(item.get("parameters"), ctx, here, depth + 1)
        kind, body, _ = self.instantiate(reference, given, ctx, here, depth)
        if kind == "extends":
            raise unsupported(reference, "extends: inside a template used as a list item")
        items = body.get(kind)
        return list(items) if isinstance(items, list) else []


def _as_list(value: Any) -> list:
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else mark([value], value)


def compile_time_values(variables: Any) -> dict[str, Any]:
    """Names and values of a ``variables:`` block (map or list form) as ``${{ variables.x }}`` sees them."""
    found: dict[str, Any] = {}
    if isinstance(variables, dict):
        found.update({str(name): value for name, value in variables.items()})
    elif isinstance(variables, list):
        for entry in variables:
            if isinstance(entry, dict) and "name" in entry:
                found[str(entry["name"])] = entry.get("value", "")
    return found


def compile_pipeline(
    path: Path, repo_root: Path, given: dict[str, str], predefined: dict[str, str]
) -> tuple[MDict, dict[str, Any]]:
    """(expanded pipeline, its parameter values): the root file with every template and expression applied."""
    document = load_file(path, repo_root)
    if not isinstance(document, dict):
        raise PipelineError(document, "a pipeline must be a mapping (stages:, jobs: or steps:)")
    values = params.resolve(document.get("parameters"), given, document, from_text=True)
    ctx = Context({"parameters": values, "variables": dict(predefined)})
    expander = Expander(repo_root)
    body = mark({key: value for key, value in document.items() if key != "parameters"}, document)
    expanded = expander.expand(body, ctx, path.parent)
    if "extends" in expanded:
        extends = expanded.pop("extends")
        if not isinstance(extends, dict) or "template" not in extends:
            raise PipelineError(extends, "extends: needs template: (and optional parameters:)")
        shared = [key for key in ("stages", "jobs", "steps") if key in expanded]
        if shared:
            raise PipelineError(shared[0], "extends: cannot be combined with stages:, jobs: or steps:")
        variables = {**predefined, **compile_time_values(expanded.get("variables"))}
        kind, body, _ = expander.instantiate(
            extends["template"], extends.get("parameters"), ctx.child(variables=variables), path.parent, 1
        )
        if kind == "extends":
            raise unsupported(extends["template"], "an extends: template that itself extends another")
        for key, value in body.items():
            if key == "variables" and isinstance(expanded.get("variables"), list) and isinstance(value, list):
                expanded["variables"] = mark(list(expanded["variables"]) + list(value), expanded["variables"])
            else:
                expanded[key] = value
    return expanded, values
