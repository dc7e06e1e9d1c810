"""A declarative XML model: one dataclass per element, parsed and written from the same declaration.

An element class is a subclass of :class:`XmlElement` decorated with :func:`xml_element` (which
makes it a keyword-only dataclass) with a ``TAG``; each field says where its value lives::

    @xml_element
    class Disk(XmlElement):
        TAG = "disk"
        type: str | None = attr("type")                  # <disk type="...">
        source_file: str | None = attr("file", path="source")  # <disk><source file="..."/>
        target_dev: str | None = attr("dev", path="target")
        readonly: bool = flag("readonly")                # <disk><readonly/>

- ``attr(name, path=...)``: an attribute of this element or of the sub-element at ``path``.
- ``text(path)``: the text of the sub-element at ``path`` (``text("")`` is this element's own text).
- ``flag(path)``: True when the (empty) sub-element at ``path`` is present.
- ``child(Cls, path=...)`` / ``children(Cls, path=...)``: nested element(s) of class ``Cls``.

Paths are ``/``-separated element names. Scalar fields are ``str``, ``int`` or ``bool`` (possibly
``| None``), as read from the annotation.

Writing follows field declaration order; a sub-element shared by several fields (``<memory>``'s
text and ``unit`` attribute) is created by the first field that has a value. ``None``, ``False``
and empty lists write nothing. Parsing keeps only what the fields declare: unknown elements and
attributes are dropped, so a parse/write round trip of foreign XML (e.g. libvirt's dumpxml) yields
our subset.

Namespaced elements use ElementTree's ``{uri}tag`` form in ``TAG``; set ``NAMESPACE`` on the class
so that its relative paths are qualified with the same URI. Register a prefix with
:func:`xml.etree.ElementTree.register_namespace` or the output uses ``ns0:``.

Values are only ever put into the tree through ElementTree, which escapes ``<``, ``&`` and quotes;
characters that XML 1.0 cannot carry at all (NUL, most control characters) are refused.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from filemem.exceptions import FilememError

__all__ = [
    "XmlElement",
    "XmlModelError",
    "attr",
    "child",
    "children",
    "flag",
    "text",
    "xml_element",
]

_SPEC_KEY = "filemem.xml"
_INT_RE = re.compile(r"^\s*[+-]?[0-9]+\s*$")
# XML 1.0 "Char" production; anything else makes the document unreadable for libvirt.
_NOT_XML_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SCALARS: dict[str, type] = {"str": str, "int": int, "bool": bool}
_RESOLVED: dict[type[XmlElement], tuple[_Field, ...]] = {}


_E = TypeVar("_E", bound="XmlElement")


class XmlModelError(FilememError, ValueError):
    """XML that does not fit the model: not well-formed, wrong root tag, or a bad value."""


class _Kind(enum.Enum):
    ATTR = "attribute"
    TEXT = "text"
    FLAG = "flag"
    CHILD = "child"
    CHILDREN = "children"


@dataclass(frozen=True)
class _Spec:
    kind: _Kind
    path: str
    name: str = ""
    cls: type[XmlElement] | None = None
    truth: tuple[str, str] = ("yes", "no")


@dataclass(frozen=True)
class _Field:
    """A field's spec resolved for its class: qualified element path and scalar type."""

    name: str
    spec: _Spec
    segments: tuple[str, ...]
    scalar: type | None

    def describe(self, owner: type[XmlElement]) -> str:
        where = "/".join((owner.TAG, *self.segments))
        return f"{where}@{self.spec.name}" if self.spec.kind is _Kind.ATTR else where


def _spec_field(spec: _Spec, **kwargs: Any) -> Any:
    return field(metadata={_SPEC_KEY: spec}, **kwargs)


def attr(name: str, *, path: str = "", truth: tuple[str, str] = ("yes", "no")) -> Any:
    """Attribute ``name`` of the element at ``path``; ``truth`` spells True/False for bools."""
    return _spec_field(_Spec(_Kind.ATTR, path, name=name, truth=truth), default=None)


def text(path: str, *, truth: tuple[str, str] = ("yes", "no")) -> Any:
    """Text of the sub-element at ``path``; ``""`` means this element's own text."""
    return _spec_field(_Spec(_Kind.TEXT, path, truth=truth), default=None)


def flag(path: str) -> Any:
    """True when the sub-element at ``path`` exists (libvirt's ``<readonly/>``, ``<discard/>``)."""
    return _spec_field(_Spec(_Kind.FLAG, path), default=False)


def child(cls: type[XmlElement], *, path: str = "") -> Any:
    """One optional nested element of class ``cls``, under ``path``."""
    return _spec_field(_Spec(_Kind.CHILD, path, cls=cls), default=None)


def children(cls: type[XmlElement], *, path: str = "") -> Any:
    """All nested elements of class ``cls`` under ``path``, in document order."""
    return _spec_field(_Spec(_Kind.CHILDREN, path, cls=cls), default_factory=list)


class XmlElement:
    """Base of all element classes; subclasses are decorated with @xml_element and set ``TAG``."""

    TAG: ClassVar[str]
    NAMESPACE: ClassVar[str] = ""

    @classmethod
    def from_element(cls, element: ET.Element) -> Self:
        resolved = _resolve(cls)
        if element.tag != cls.TAG:
            raise XmlModelError(f"expected element <{cls.TAG}>, found <{element.tag}>")
        values = {f.name: _read(cls, element, f) for f in resolved}
        return cls(**values)

    @classmethod
    def from_xml(cls, xml: str) -> Self:
        try:
            # The XML comes from libvirt or from our own files; expat neither fetches external
            # entities nor expands nested ones without bound, so defusedxml adds nothing here.
            root = ET.fromstring(xml)  # noqa: S314
        except ET.ParseError as exc:
            raise XmlModelError(f"not well-formed XML: {exc}") from exc
        return cls.from_element(root)

    def to_element(self) -> ET.Element:
        resolved = _resolve(type(self))
        element = ET.Element(self.TAG)
        for f in resolved:
            _write(type(self), element, f, getattr(self, f.name))
        return element

    def to_xml(self) -> str:
        """The element pretty-printed with two-space indentation, without an XML declaration."""
        element = self.to_element()
        ET.indent(element, space="  ")
        return ET.tostring(element, encoding="unicode")


@typing.dataclass_transform(kw_only_default=True)
def xml_element(cls: type[_E]) -> type[_E]:
    """Make ``cls`` a keyword-only dataclass and check its field declarations right away."""
    # Checking here, not at first use, turns a bad declaration into an import-time error.
    datacls = dataclass(kw_only=True)(cls)
    _RESOLVED[datacls] = _resolve_fields(datacls)
    return datacls


def _resolve(cls: type[XmlElement]) -> tuple[_Field, ...]:
    resolved = _RESOLVED.get(cls)
    if resolved is None or not isinstance(getattr(cls, "TAG", None), str):
        raise TypeError(f"{cls.__name__} needs @xml_element and a TAG to be read or written")
    return resolved


def _resolve_fields(cls: type[XmlElement]) -> tuple[_Field, ...]:
    assert dataclasses.is_dataclass(cls)
    resolved = []
    for dc_field in dataclasses.fields(cls):
        spec = dc_field.metadata.get(_SPEC_KEY)
        if spec is None:
            raise TypeError(f"{cls.__name__}.{dc_field.name} is not declared with attr/text/...")
        segments = tuple(_qualify(cls, s) for s in spec.path.split("/") if s)
        scalar = None
        if spec.kind in (_Kind.CHILD, _Kind.CHILDREN):
            assert spec.cls is not None
            segments = (*segments, spec.cls.TAG)
        elif spec.kind is _Kind.FLAG:
            if not segments:
                raise TypeError(f"{cls.__name__}.{dc_field.name}: a flag needs a path")
        else:
            scalar = _scalar_type(dc_field.type)
            if scalar is None:
                raise TypeError(
                    f"{cls.__name__}.{dc_field.name}: {dc_field.type} is not str, int or bool "
                    "(optionally | None)"
                )
        resolved.append(_Field(dc_field.name, spec, segments, scalar))
    return tuple(resolved)


def _qualify(cls: type[XmlElement], segment: str) -> str:
    if cls.NAMESPACE and not segment.startswith("{"):
        return f"{{{cls.NAMESPACE}}}{segment}"
    return segment


def _scalar_type(annotation: Any) -> type | None:
    # Annotations are strings under "from __future__ import annotations"; reading them as text
    # (rather than eval/get_type_hints) also works for classes defined inside functions.
    if isinstance(annotation, str):
        options = [a.strip() for a in annotation.split("|")]
    else:
        options = [getattr(a, "__name__", a) for a in typing.get_args(annotation) or [annotation]]
    names = [o for o in options if o not in ("None", "NoneType")]
    return _SCALARS.get(names[0]) if len(names) == 1 else None


def _find(element: ET.Element, segments: tuple[str, ...]) -> ET.Element | None:
    # A plain walk rather than Element.find(): tag names never get read as XPath syntax.
    current: ET.Element | None = element
    for segment in segments:
        assert current is not None
        current = next((c for c in current if c.tag == segment), None)
        if current is None:
            return None
    return current


def _ensure(element: ET.Element, segments: tuple[str, ...]) -> ET.Element:
    current = element
    for segment in segments:
        found = next((c for c in current if c.tag == segment), None)
        current = ET.SubElement(current, segment) if found is None else found
    return current


def _read(owner: type[XmlElement], element: ET.Element, f: _Field) -> Any:
    spec = f.spec
    if spec.kind is _Kind.CHILDREN:
        assert spec.cls is not None
        parent = _find(element, f.segments[:-1])
        if parent is None:
            return []
        return [spec.cls.from_element(c) for c in parent if c.tag == f.segments[-1]]
    target = _find(element, f.segments)
    if spec.kind is _Kind.FLAG:
        return target is not None
    if target is None:
        return None
    if spec.kind is _Kind.CHILD:
        assert spec.cls is not None
        return spec.cls.from_element(target)
    raw = target.get(spec.name) if spec.kind is _Kind.ATTR else target.text
    return None if raw is None else _parse_scalar(owner, f, raw)


def _parse_scalar(owner: type[XmlElement], f: _Field, raw: str) -> str | int | bool:
    if f.scalar is int:
        if not _INT_RE.match(raw):
            raise XmlModelError(f"{f.describe(owner)}: {raw!r} is not an integer")
        return int(raw)
    if f.scalar is bool:
        if raw not in f.spec.truth:
            choices = " or ".join(repr(t) for t in f.spec.truth)
            raise XmlModelError(f"{f.describe(owner)}: {raw!r} is not {choices}")
        return raw == f.spec.truth[0]
    return raw


def _write(owner: type[XmlElement], element: ET.Element, f: _Field, value: Any) -> None:
    spec = f.spec
    if spec.kind is _Kind.CHILDREN:
        if value:
            parent = _ensure(element, f.segments[:-1])
            parent.extend(_nested(owner, f, item).to_element() for item in value)
    elif spec.kind is _Kind.CHILD:
        if value is not None:
            _ensure(element, f.segments[:-1]).append(_nested(owner, f, value).to_element())
    elif spec.kind is _Kind.FLAG:
        if value:
            _ensure(element, f.segments)
    elif value is not None:
        target = _ensure(element, f.segments)
        formatted = _format_scalar(owner, f, value)
        if spec.kind is _Kind.ATTR:
            target.set(spec.name, formatted)
        else:
            target.text = formatted


def _nested(owner: type[XmlElement], f: _Field, value: Any) -> XmlElement:
    assert f.spec.cls is not None
    if not isinstance(value, f.spec.cls):
        raise TypeError(f"{f.describe(owner)}: expected {f.spec.cls.__name__}, got {value!r}")
    return value


def _format_scalar(owner: type[XmlElement], f: _Field, value: Any) -> str:
    # bool is an int subclass: True must never be written as "1", nor 1 as "yes".
    assert f.scalar is not None
    if not isinstance(value, f.scalar) or isinstance(value, bool) != (f.scalar is bool):
        raise TypeError(f"{f.describe(owner)}: expected {f.scalar}, got {value!r}")
    if isinstance(value, bool):
        return f.spec.truth[0] if value else f.spec.truth[1]
    formatted = str(value)
    bad = _NOT_XML_CHAR_RE.search(formatted)
    if bad:
        raise XmlModelError(f"{f.describe(owner)}: character {bad.group()!r} cannot appear in XML")
    return formatted
