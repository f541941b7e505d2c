"""The worker form's translations: every text of the form is translated in every launch
language, with the same placeholders, the catalogues are in step with the templates and the
taxonomy, and every page renders in every language from the catalogues compiled in memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from hotline.intake.pages import HERE, LANGUAGES, FormFields
from hotline.shared.taxonomy import categories
from hotline.shared.web import Language, PageTemplates, StaticAssets

REPO = Path(__file__).resolve().parents[2]
LOCALE_DIR = REPO / "services" / "intake" / "locale"
PLACEHOLDER = re.compile(r"%\([^)]+\)[sd]|%[sd]|\{[^}]*\}")


def catalogue(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=locale)


TEMPLATE = catalogue(LOCALE_DIR / "messages.pot")
TEXTS = [message.id for message in TEMPLATE if message.id and isinstance(message.id, str)]


@pytest.mark.parametrize("locale", [language.locale for language in LANGUAGES])
def test_every_text_is_translated_with_the_same_placeholders(locale: str) -> None:
    translated = catalogue(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po", locale)
    untranslated, mismatched = [], []
    for text in TEXTS:
        message = translated.get(text)
        if message is None or not message.string or message.fuzzy:
            untranslated.append(text)
        elif sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(str(message.string))):
            mismatched.append(text)
    assert untranslated == []
    assert mismatched == []


def test_the_template_holds_every_category_label_and_hint() -> None:
    for category in categories():
        assert category.label in TEXTS
        assert category.hint in TEXTS


def test_the_catalogues_are_in_step_with_the_templates_and_the_taxonomy() -> None:
    checked = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "i18n.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_no_compiled_catalogue_is_kept() -> None:
    assert list(LOCALE_DIR.rglob("*.mo")) == []


@pytest.mark.parametrize("language", LANGUAGES, ids=lambda language: language.code)
def test_every_page_renders_in_every_language(language: Language) -> None:
    assets = StaticAssets(HERE / "static")
    templates = PageTemplates(
        HERE / "templates",
        LOCALE_DIR,
        [language.locale],
        globals={"asset": assets.url, "languages": LANGUAGES},
    )
    form = templates.render(
        language.locale,
        "form.html",
        language=language,
        vkey="",
        categories=categories(),
        fields=FormFields(),
        matches=[],
        searched=False,
        error=None,
    )
    assert f'<html lang="{language.tag}"' in form
    messages = form.split('id="messages">', 1)[1].split("</script>", 1)[0]
    assert all(json.loads(messages).values())
    for template, context in [
        ("receipt.html", {"receipt": "0000 " * 9 + "0000"}),
        ("today.html", {"today": "today"}),
        ("error.html", {"problem": "not-found"}),
        ("error.html", {"problem": "bad-form"}),
    ]:
        page = templates.render(language.locale, template, language=language, **context)
        assert f'<html lang="{language.tag}"' in page
