"""The Registry every extension point uses: registration, building by name, aliases, and errors
that list the choices."""

import pytest

from minimax.registry import Registry


def test_register_build_alias_and_errors():
    reg: Registry[object] = Registry("rule")

    @reg.register("danskin", aliases=("pgd",))
    class Danskin:
        """The single-gradient rule."""

        def __init__(self, scale=1):
            self.scale = scale

    assert reg.names() == ["danskin"]
    assert reg.choices() == ["danskin", "pgd"]
    assert reg.canonical("pgd") == "danskin"
    assert isinstance(reg.build("pgd", scale=2), Danskin)
    assert reg.build("danskin", scale=3).scale == 3
    assert reg.help("pgd") == "The single-gradient rule."
    assert "pgd" in reg and "ddi" not in reg and len(reg) == 1
    with pytest.raises(ValueError, match="unknown rule 'ddi': choose one of danskin, pgd"):
        reg.get("ddi")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("pgd", Danskin)
