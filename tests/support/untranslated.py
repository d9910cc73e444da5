"""Finding text a person reads that is not marked for translation: in Jinja templates (text
outside tags, the attributes people read, string literals in expressions) and in Python (the
messages of flash() and of raised domain errors).

Markup, entities, numbers and symbols are not words; the brand and a few codes are allowed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from jinja2 import Environment, nodes

# Words that read the same in every language: the brand, card and date placeholders.
ALLOWED_WORDS = {
    "Bilheteria",
    "MM",
    "YYYY",
    "CVC",
    "QR",
    "CSV",
    "XLSX",
    "PIX",
    "ID",
    "Bilheteria's",
}
GETTEXT_NAMES = {"_", "gettext", "ngettext", "pgettext", "npgettext", "lazy_gettext", "N_"}
# Attributes whose value a person reads (or hears).
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")
_WORD = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'’]+")
_MARK = "\x00"  # where an expression or a tag of the template was
_jinja = Environment(extensions=["jinja2.ext.i18n"])  # noqa: S701 - parsed, never rendered


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w not in ALLOWED_WORDS]


def template_text(source: str) -> str:
    """The template's text outside Jinja tags (each tag a mark), with ``{% trans %}`` blocks
    left out: what the page shows besides what expressions print."""
    parts: list[str] = []
    block: list[str] = []
    in_block = in_trans = False
    for _line, kind, value in _jinja.lex(source):
        if kind == "block_begin":
            in_block, block = True, []
        elif kind == "block_end":
            in_block = False
            if block[:1] == ["trans"]:
                in_trans = True
            elif block[:1] == ["endtrans"]:
                in_trans = False
            parts.append(_MARK)
        elif in_block:
            if kind != "whitespace":
                block.append(value)
        elif kind == "data" and not in_trans:
            parts.append(value)
        elif kind in ("variable_begin", "comment_begin"):
            parts.append(_MARK)
    return "".join(parts)


def unmarked_text(source: str) -> list[str]:
    """The human words of a template's text that no gettext call covers."""
    text = re.sub(r"<!--.*?-->", " ", template_text(source), flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    found: list[str] = []
    for tag in re.finditer(r"<[^>]*>", text):
        button = re.match(r'<input\b[^>]*\stype="(submit|button|reset)"', tag.group(0))
        for attribute in READ_ATTRIBUTES + (("value",) if button else ()):
            for value in re.findall(rf'\s{attribute}="([^"]*)"', tag.group(0)):
                found += [f'{attribute}="{value}"'] if _words(value.replace(_MARK, " ")) else []
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r'[\w-]+="[^"]*"', " ", text)  # an attribute a macro writes into a tag
    text = re.sub(r"&[a-zA-Z]+;|&#\d+;", " ", text)
    for piece in re.split(rf"{_MARK}|\n", text):
        if _words(piece):
            found.append(piece.strip())
    return found


def unmarked_literals(source: str) -> list[str]:
    """String literals of the template's expressions that read as text (words with a space, or
    a capitalised word) and are not gettext's argument."""
    found: list[str] = []

    def walk(node: nodes.Node, marked: bool) -> None:
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            marked = marked or node.node.name in GETTEXT_NAMES
        if isinstance(node, nodes.Compare):
            marked = True  # compared ("Admin" in roles), not shown
        is_text = isinstance(node, nodes.Const) and isinstance(node.value, str)
        if is_text and not marked and _reads_as_text(node.value):
            found.append(node.value)
        if isinstance(node, nodes.TemplateData):
            return  # the text outside tags: unmarked_text's
        for child in node.iter_child_nodes():
            walk(child, marked)

    walk(_jinja.parse(source), False)
    return found


def _reads_as_text(value: str) -> bool:
    if "=" in value or "%" in value or "/" in value or "{" in value:
        return False  # attributes, formats, paths
    words = _words(value)
    if not words or (" " not in value and re.search(r"[._]", value)):
        return False  # no word, or a name (an endpoint, a column)
    return " " in value.strip() or value[:1].isupper()


def template_problems(path: Path) -> list[str]:
    source = path.read_text()
    return [f"{path.name}: {text!r}" for text in unmarked_text(source) + unmarked_literals(source)]


# Python: the calls whose message a person reads.
def python_problems(path: Path, error_classes: set[str]) -> list[str]:
    """flash() calls, ``raise SomeDomainError(...)`` (or ``SomeDomainError(...)`` built to be
    raised later) and ``abort(..., description=...)`` whose message is a plain or formatted
    string literal, not gettext's."""
    tree = ast.parse(path.read_text(), str(path))
    problems = []
    for call in _calls(tree):
        name = _called_name(call)
        if name == "flash" or name in error_classes or name == "abort":
            message = _message_argument(call) if name != "abort" else _description(call)
            if message is not None and _is_literal_text(message):
                problems.append(f"{path.name}:{call.lineno} {name}({ast.unparse(message)[:60]})")
    return problems


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _message_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg == "message":
            return keyword.value
    return None


def _description(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "description":
            return keyword.value
    return None


def _is_literal_text(node: ast.expr) -> bool:
    """A string literal, an f-string, a concatenation or a ``%``/``.format`` of one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(_words(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.Constant) and _words(str(v.value)) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _is_literal_text(node.left) or _is_literal_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join") and _is_literal_text(node.func.value)
    return False
