"""Every text a person reads is marked for translation, and translated: templates, flashed and
raised messages (tests/support/untranslated.py); the pt_BR catalog has a translation for every
msgid, none fuzzy; the committed .mo is the .po compiled (the app reads the .mo)."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.support.imports import ROOT
from tests.support.untranslated import (
    python_problems,
    template_problems,
    unmarked_literals,
    unmarked_text,
)

APP = ROOT / "app"
TEMPLATES = sorted((APP / "templates").rglob("*.html"))
CATALOGS = APP / "translations"
PT_BR = CATALOGS / "pt_BR" / "LC_MESSAGES"


def domain_error_classes() -> set[str]:
    """DomainError and every class of app/ that derives from it, found by name."""
    bases: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                bases.setdefault(node.name, set()).update(names)
    found = {"DomainError"}
    while True:
        more = {name for name, parents in bases.items() if parents & found} - found
        if not more:
            return found
        found |= more


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(APP)))
def test_a_template_marks_every_text_for_translation(path: Path) -> None:
    assert template_problems(path) == []


def test_flashed_and_raised_messages_are_marked_for_translation() -> None:
    classes = domain_error_classes()
    assert {"Conflict", "NotFound", "HoldExpired", "WrongCode"} <= classes
    problems = [p for path in sorted(APP.rglob("*.py")) for p in python_problems(path, classes)]
    assert problems == []


def test_the_template_check_sees_unmarked_text() -> None:
    source = (
        '<h1>Find your event</h1><input placeholder="Artist, venue">'
        "<p>{{ _('Marked') }} &middot; {{ price }}</p>{% trans %}Also marked{% endtrans %}"
        "<p>{{ 'general admission' if x else _('numbered seats') }}</p><b>12 / 3</b>"
        '<input type="submit" value="Turn on"><input name="q" value="plain value">'
    )
    assert unmarked_text(source) == [
        'placeholder="Artist, venue"',
        'value="Turn on"',
        "Find your event",
    ]
    assert unmarked_literals(source) == ["general admission"]


def test_the_python_check_sees_unmarked_messages(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f(x):\n"
        "    flash('Saved.')\n"
        "    flash(_('Saved.'))\n"
        "    raise Conflict(f'Spot {x} is sold')\n"
        "    raise NotFound(_('No event %(id)s', id=x))\n"
        "    raise Conflict('Spot ' + str(x))\n"
        "    raise ValueError('not shown to anyone')\n"
        "    abort(400, description='Unknown query parameter.')\n"
        "    abort(404)\n"
    )
    assert python_problems(module, {"Conflict", "NotFound"}) == [
        "m.py:2 flash('Saved.')",
        "m.py:4 Conflict(f'Spot {x} is sold')",
        "m.py:6 Conflict('Spot ' + str(x))",
        "m.py:8 abort('Unknown query parameter.')",
    ]


def _catalog() -> object:
    with (PT_BR / "messages.po").open("rb") as po:
        return read_po(po, locale="pt_BR")


def test_every_message_has_a_pt_br_translation_and_none_is_fuzzy() -> None:
    catalog = _catalog()
    messages = [m for m in catalog if m.id]  # type: ignore[attr-defined]
    assert len(messages) > 100  # the catalog was read
    missing = [
        m.id
        for m in messages
        if m.fuzzy or not (all(m.string) if isinstance(m.id, tuple) else m.string)
    ]
    assert missing == []


def test_the_committed_mo_is_the_po_compiled() -> None:
    """`make translations` writes both; a .po edited without compiling fails here."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())  # type: ignore[arg-type]
    assert (PT_BR / "messages.mo").read_bytes() == compiled.getvalue()


def test_the_catalog_has_every_marked_message() -> None:
    """A text marked but not extracted into the catalog would show in English."""
    from babel.messages.extract import extract_from_dir

    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "N_": None}
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    marked = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(APP), method_map, keywords=keywords
        )
    }
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog()}  # type: ignore[attr-defined]
    assert sorted(marked - known) == []


def test_without_an_app_the_language_is_the_default() -> None:
    from app.i18n import current_locale

    assert current_locale() == "pt_BR"


def test_every_text_the_gate_scripts_show_is_sent_translated() -> None:
    """The gate page's scripts translate with t("...") from the dictionary the page carries
    (app/views/gate.py, SCRIPT_TEXTS): a text missing there would show in English."""
    import re

    from app.views.gate import SCRIPT_TEXTS

    shown = {
        match.group(1)
        for script in (APP / "static").glob("gate*.js")
        for match in re.finditer(r'\bt\("((?:[^"\\]|\\.)*)"', script.read_text())
    }
    assert len(shown) > 40
    assert sorted(shown - set(SCRIPT_TEXTS)) == []
    # and no text of the scripts is left untranslated: none is shown bare
    bare = re.compile(r'textContent = "[A-Za-z]|confirm\(`|textContent = `[A-Z]')
    for script in (APP / "static").glob("gate*.js"):
        assert not bare.findall(script.read_text()), script.name


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("pt-BR,pt;q=0.9", "pt_BR"),
        ("en-GB,en;q=0.9", "en"),
        ("fr, de;q=0.5", "pt_BR"),
        ("", "pt_BR"),
        (None, "pt_BR"),
        ("es, en;q=0.3", "en"),
    ],
)
def test_the_fast_paths_read_accept_language_as_the_app_does(header: str | None, locale: str):
    from app.i18n import locale_for

    assert locale_for(header) == locale
