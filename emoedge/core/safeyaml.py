"""YAML for configuration (device profiles, ``--config``, ``--set`` values, training configs, recipes,
class priors), read as hostile input: safe types only (``yaml.SafeLoader``), no anchors or aliases (an
alias bomb of a few hundred bytes expands to gigabytes once a value is walked or printed; no
configuration of this project needs them), at most ``MAX_YAML_BYTES`` of text and ``MAX_DEPTH``
levels of nesting. Every refusal is a ``ValueError`` subclass chosen by the caller, with a message
naming where the text came from."""

from __future__ import annotations

import yaml

MAX_YAML_BYTES = 1 << 20       # 1 MiB: the largest profile or config of the project is ~5 KB
MAX_DEPTH = 32                 # nesting levels of mappings and lists


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors, aliases and deep nesting while it composes the document."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted here",
                                              event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&name) are not accepted here",
                                              event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_text(text: str, where: str, error: type[Exception] = ValueError):
    """The YAML document in ``text`` (from ``where``: a file name, ``--set key``) as plain Python data;
    ``error(message)`` when it is too long, not YAML, or uses anchors/aliases."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise error(f"{where}: longer than {MAX_YAML_BYTES // 1024} KiB; refused")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML here: {_short(exc)}") from None


def _short(exc: Exception, limit: int = 300) -> str:
    s = " ".join(str(exc).split())
    return s if len(s) <= limit else s[:limit] + "..."
