"""Reset between gallery examples: every example runs in the Sphinx process, so a problem or an
operator one example registers (``plot_05``, ``plot_06``) must not stay in the registries for the
next (its class lived in that example's ``__main__``)."""
from __future__ import annotations

_SNAPSHOT: dict[str, dict[str, str]] = {}


def reset_registries(gallery_conf, fname, when=None):
    from sciops import operators, problems

    for name, registry in (("problems", problems.REGISTRY), ("operators", operators.REGISTRY)):
        saved = _SNAPSHOT.setdefault(name, dict(registry))
        registry.clear()
        registry.update(saved)
