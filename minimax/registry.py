"""Registries: one name → builder table per extension point (rules, inner solvers, min-norm
methods, attacks, datasets, models). Each registry lives next to what it registers; the CLI,
trainer, evaluation and demo read it, so adding a rule is one class plus one ``register`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered table name → builder (a class or a function returning a ``T``).

    >>> rules = Registry("rule")
    >>> @rules.register("ddi")
    ... class DDi: ...
    >>> rules.names()
    ['ddi']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}
        self._aliases: dict[str, str] = {}
        self._help: dict[str, str] = {}

    def register(
        self, name: str, *, aliases: tuple[str, ...] = (), help: str | None = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``builder`` under ``name`` (and its aliases)."""

        def add(builder: Callable[..., T]) -> Callable[..., T]:
            self.add(name, builder, aliases=aliases, help=help)
            return builder

        return add

    def add(
        self,
        name: str,
        builder: Callable[..., T],
        *,
        aliases: tuple[str, ...] = (),
        help: str | None = None,
    ) -> None:
        """Register ``builder`` under ``name``; a name already taken is an error."""
        for key in (name, *aliases):
            if key in self._builders or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._builders[name] = builder
        for alias in aliases:
            self._aliases[alias] = name
        doc = help if help is not None else (builder.__doc__ or "").strip().split("\n")[0]
        self._help[name] = doc

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; unknown names are a ValueError
        that lists the choices."""
        if name in self._builders:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise ValueError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self.choices())}")

    def get(self, name: str) -> Callable[..., T]:
        """The builder registered under ``name`` (or an alias)."""
        return self._builders[self.canonical(name)]

    def build(self, name: str, /, *args: object, **kwargs: object) -> T:
        """``get(name)(*args, **kwargs)``."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """Registered names, in registration order (aliases excluded)."""
        return list(self._builders)

    def choices(self) -> list[str]:
        """Registered names and aliases (for argparse ``choices``)."""
        return [*self._builders, *self._aliases]

    def help(self, name: str) -> str:
        """One-line description of ``name`` (the builder's first docstring line by default)."""
        return self._help[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._builders or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._builders)})"
