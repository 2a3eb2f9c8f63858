"""The character tables embedded in the app cores are what the installed ``tokenizers`` does."""

from __future__ import annotations

from pocketbert.bundle.charclasses import KOTLIN_FILE, SWIFT_FILE, bert_char_classes, render_kotlin, render_swift


def test_committed_tables_match_the_installed_tokenizers():
    classes = bert_char_classes()
    stale = "stale: run 'python -m pocketbert.bundle.charclasses' and commit the result"
    assert KOTLIN_FILE.read_text(encoding="utf-8") == render_kotlin(classes), stale
    assert SWIFT_FILE.read_text(encoding="utf-8") == render_swift(classes), stale


def test_classes_are_the_bert_ones():
    classes = bert_char_classes()

    def member(name: str, cp: int) -> bool:
        return any(a <= cp <= b for a, b in classes[name])

    assert member("whitespace", ord(" ")) and member("whitespace", 0x3000) and not member("whitespace", ord("a"))
    assert member("control", 0x200B) and member("control", 0xE000) and not member("control", ord("\t"))
    assert member("punctuation", ord("$")) and member("punctuation", ord("¿")) and not member("punctuation", ord("a"))
    assert member("mark", 0x301) and not member("mark", ord("é"))
    assert member("chinese", ord("中")) and not member("chinese", ord("ア"))
