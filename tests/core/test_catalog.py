import pytest

from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.errors import CharacterNotFound, ConfigurationError


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
