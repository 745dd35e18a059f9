import hashlib

import pytest

from personae.core.catalog import CharacterCatalog, CharacterVersion, content_hash
from personae.core.characters import Character
from personae.errors import CharacterNotFound, ConfigurationError, NotFound


def test_lookup_by_id_and_sorted_listing() -> None:
    catalog = CharacterCatalog([Character(id="b", name="B"), Character(id="a", name="A")])
    assert catalog.get("b").name == "B"
    assert [c.id for c in catalog.all()] == ["a", "b"]
    assert "a" in catalog
    assert len(catalog) == 2


def test_unknown_id_raises_character_not_found() -> None:
    with pytest.raises(CharacterNotFound, match="unknown character 'zed'"):
        CharacterCatalog().get("zed")


def test_duplicate_ids_are_refused_and_the_old_set_kept() -> None:
    catalog = CharacterCatalog([Character(id="a", name="A")])
    with pytest.raises(ConfigurationError):
        catalog.replace([Character(id="x", name="X"), Character(id="x", name="Y")])
    assert [c.id for c in catalog.all()] == ["a"]


# --- versions -----------------------------------------------------------------------------


def v(character_id: str, persona: str, data: bytes | None = None) -> CharacterVersion:
    character = Character(id=character_id, name=character_id.title(), persona=persona)
    return CharacterVersion.of(character, data if data is not None else persona.encode())


def test_a_version_is_named_by_the_sha256_of_its_bytes() -> None:
    character = Character(id="a", name="A")
    assert CharacterVersion.of(character, b"id: a\n").hash == hashlib.sha256(b"id: a\n").hexdigest()
    # Built in code, without a file: hashed from its JSON, so equal characters hash alike.
    assert (
        CharacterVersion.of(character).hash == CharacterVersion.of(Character(id="a", name="A")).hash
    )
    assert content_hash(b"x") == hashlib.sha256(b"x").hexdigest()


def test_put_makes_a_version_current_and_keeps_the_old_ones() -> None:
    one, two = v("a", "one"), v("a", "two")
    catalog = CharacterCatalog([one])

    assert catalog.put(two)

    assert catalog.get("a").persona == "two"
    assert catalog.get_version("a") is two
    assert catalog.get("a", one.hash).persona == "one"
    assert catalog.get("a", two.hash).persona == "two"
    assert [x.hash for x in catalog.versions("a")] == [two.hash, one.hash]
    assert len(catalog) == 1


def test_the_same_content_again_changes_nothing() -> None:
    one = v("a", "one")
    catalog = CharacterCatalog([one])
    assert not catalog.put(v("a", "one"))
    assert catalog.get_version("a") is one
    assert len(catalog.versions("a")) == 1


def test_an_old_content_comes_back_as_the_very_object_kept() -> None:
    one, two = v("a", "one"), v("a", "two")
    catalog = CharacterCatalog([one])
    catalog.put(two)

    assert catalog.put(v("a", "one"))  # the file was edited back

    assert catalog.get_version("a") is one
    assert [x.hash for x in catalog.versions("a")] == [one.hash, two.hash]


def test_old_versions_beyond_the_limit_are_forgotten_and_the_current_kept() -> None:
    catalog = CharacterCatalog([v("a", "0")], keep_versions=3)
    for i in range(1, 6):
        catalog.put(v("a", str(i)))

    assert [x.character.persona for x in catalog.versions("a")] == ["5", "4", "3"]
    with pytest.raises(NotFound, match="no kept version") as caught:
        catalog.get("a", v("a", "0").hash)
    assert not isinstance(caught.value, CharacterNotFound)
    with pytest.raises(ConfigurationError):
        CharacterCatalog(keep_versions=0)


def test_version_of_names_the_version_a_character_object_is() -> None:
    one, two = v("a", "one"), v("a", "two")
    catalog = CharacterCatalog([one])
    catalog.put(two)

    assert catalog.version_of(one.character) == one.hash
    assert catalog.version_of(two.character) == two.hash
    # An equal object that the catalog never held is not one of its versions.
    assert catalog.version_of(Character(id="a", name="A", persona="one")) is None
    assert catalog.version_of(Character(id="zed", name="Zed")) is None


def test_a_removed_character_is_gone_but_running_turns_can_still_name_their_version() -> None:
    one = v("a", "one")
    catalog = CharacterCatalog([one, v("b", "bee")])

    assert catalog.remove("a")
    assert not catalog.remove("a")

    assert "a" not in catalog
    assert [c.id for c in catalog.all()] == ["b"]
    with pytest.raises(CharacterNotFound):
        catalog.get("a")
    with pytest.raises(CharacterNotFound):
        catalog.get("a", one.hash)
    with pytest.raises(CharacterNotFound):
        catalog.versions("a")
    assert catalog.version_of(one.character) == one.hash
    # Loaded again (the file is back), it is served again.
    catalog.put(v("a", "one"))
    assert catalog.get_version("a") is one


def test_errors_are_recorded_on_a_served_character_and_cleared_by_a_load() -> None:
    catalog = CharacterCatalog([v("a", "one")])
    catalog.set_errors("a", ["a.yaml: not valid YAML"])
    catalog.set_errors("ghost", ["ghost.yaml: broken"])  # not served: nothing to attach to

    assert catalog.errors("a") == ("a.yaml: not valid YAML",)
    assert catalog.get("a").persona == "one"  # the old version keeps serving
    assert catalog.errors("ghost") == ()

    catalog.put(v("a", "one"))  # the file was restored as it was
    assert catalog.errors("a") == ()


def test_switch_gives_a_conversation_the_current_version() -> None:
    one, two = v("a", "one"), v("a", "two")
    catalog = CharacterCatalog([one])
    catalog.put(two)

    assert catalog.policy == "switch"
    assert catalog.for_conversation("a", one.hash) is two.character
    assert catalog.for_conversation("a", None) is two.character


def test_pin_keeps_a_conversation_on_its_version_while_it_is_kept() -> None:
    one = v("a", "one")
    catalog = CharacterCatalog([one], policy="pin", keep_versions=2)
    catalog.put(v("a", "two"))

    assert catalog.for_conversation("a", one.hash) is one.character
    assert catalog.for_conversation("a", None).persona == "two"  # no reply yet: the current
    assert catalog.for_conversation("a", "f" * 64).persona == "two"  # unknown: the current

    catalog.put(v("a", "three"))  # "one" is forgotten
    assert catalog.for_conversation("a", one.hash).persona == "three"
    catalog.remove("a")
    with pytest.raises(CharacterNotFound):
        catalog.for_conversation("a", one.hash)


def test_replace_serves_exactly_the_given_characters() -> None:
    catalog = CharacterCatalog([v("a", "one"), v("b", "bee")])
    catalog.replace([v("b", "bee2"), v("c", "sea")])

    assert [c.id for c in catalog.all()] == ["b", "c"]
    assert [x.character.persona for x in catalog.versions("b")] == ["bee2", "bee"]
    assert [x.character.id for x in catalog.all_versions()] == ["b", "c"]
