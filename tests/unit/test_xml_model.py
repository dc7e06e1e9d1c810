"""The declarative XML model: fixture round trips and attribute/text/flag/child semantics."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from filemem.virt.xml import (
    FILEMEM_NS,
    CharDevice,
    Domain,
    InstanceMetadata,
    Os,
    XmlElement,
    XmlModelError,
    attr,
    child,
    children,
    flag,
    text,
    xml_element,
)
from filemem.virt.xml.domain import Resource

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
CASES = sorted(p.name.removesuffix(".in.xml") for p in FIXTURES.glob("*.in.xml"))


def canon(xml: str) -> str:
    return ET.canonicalize(xml_data=xml, strip_text=True)


@xml_element
class Leaf(XmlElement):
    TAG = "leaf"

    name: str | None = attr("name")
    size: int | None = attr("size")
    enabled: bool | None = attr("enabled")
    power: bool | None = attr("power", truth=("on", "off"))
    value: str | None = text("")


@xml_element
class Tree(XmlElement):
    TAG = "tree"

    label: str | None = text("label")
    label_lang: str | None = attr("lang", path="label")
    deep: int | None = text("a/b/c")
    marker: bool = flag("marker")
    nested_marker: bool = flag("x/y")
    leaf: Leaf | None = child(Leaf)
    leaves: list[Leaf] = children(Leaf, path="leaves")


# --- fixtures ---------------------------------------------------------------------------------


def test_there_are_fixture_cases() -> None:
    assert {"file_backed_kernel", "disk_overlay", "foreign_hugepages", "special_chars"} <= set(
        CASES
    )


@pytest.mark.parametrize("case", CASES)
def test_fixture_round_trip(case: str) -> None:
    domain = Domain.from_xml((FIXTURES / f"{case}.in.xml").read_text())
    expected = (FIXTURES / f"{case}.out.xml").read_text()
    assert canon(domain.to_xml()) == canon(expected)


@pytest.mark.parametrize("case", CASES)
def test_fixture_output_is_a_fixed_point(case: str) -> None:
    expected = (FIXTURES / f"{case}.out.xml").read_text()
    domain = Domain.from_xml(expected)
    assert Domain.from_xml(domain.to_xml()) == domain
    assert canon(domain.to_xml()) == canon(expected)


def test_foreign_domain_values_and_dropped_elements() -> None:
    domain = Domain.from_xml((FIXTURES / "foreign_hugepages.in.xml").read_text())
    assert domain.memory == 4194304
    assert domain.metadata is None  # nova's namespace is not ours
    assert domain.memory_backing is not None
    assert domain.memory_backing.hugepages is not None
    [page] = domain.memory_backing.hugepages.pages
    assert (page.size, page.unit, page.nodeset) == (2048, "KiB", "0")
    assert domain.memory_backing.locked and domain.memory_backing.nosharepages
    assert domain.memory_backing.source_type is None
    out = domain.to_xml()
    for dropped in ("numatune", "topology", "timer", "rng", "commandline", "nova:"):
        assert dropped not in out


def test_resource_partition_round_trip() -> None:
    xml = "<domain><resource><partition>/machine/filemem</partition></resource></domain>"
    domain = Domain.from_xml(xml)
    assert domain.resource == Resource(partition="/machine/filemem")
    assert canon(domain.to_xml()) == canon(xml)
    assert Domain.from_xml(domain.to_xml()) == domain
    assert Domain.from_xml("<domain><resource/></domain>").resource == Resource()
    assert Domain.from_xml("<domain/>").resource is None


def test_disk_fixture_values() -> None:
    domain = Domain.from_xml((FIXTURES / "disk_overlay.in.xml").read_text())
    assert domain.id == 7
    assert domain.devices is not None
    disk, cdrom = domain.devices.disks
    assert disk.source_file == "/var/lib/filemem/instances/web-1/disk.qcow2"
    assert (disk.driver_type, disk.driver_discard, disk.readonly) == ("qcow2", "unmap", False)
    assert (cdrom.device, cdrom.readonly) == ("cdrom", True)
    [serial] = domain.devices.serials
    assert (serial.type, serial.log_append, serial.target_port) == ("pty", False, 0)
    assert domain.metadata == InstanceMetadata(
        name="web-1",
        creation_time="2024-05-01 10:00:00",
        flavor_name="m1.small",
        memory_mb=2048,
        vcpus=2,
    )


# --- attributes and text ----------------------------------------------------------------------


def test_attributes_are_typed_on_parse() -> None:
    leaf = Leaf.from_xml('<leaf name="a" size=" 42 " enabled="no" power="on">v</leaf>')
    assert leaf == Leaf(name="a", size=42, enabled=False, power=True, value="v")


def test_absent_attributes_and_text_are_none() -> None:
    assert Leaf.from_xml("<leaf/>") == Leaf()


def test_attributes_are_written_with_their_spelling() -> None:
    element = Leaf(size=3, enabled=True, power=False, value="x").to_element()
    assert element.attrib == {"size": "3", "enabled": "yes", "power": "off"}
    assert element.text == "x"


@pytest.mark.parametrize(
    ("xml", "where"),
    [
        ('<leaf size="12k"/>', "leaf@size"),
        ('<leaf size="1_000"/>', "leaf@size"),
        ('<leaf enabled="true"/>', "leaf@enabled"),
        ('<leaf power="yes"/>', "leaf@power"),
        ("<tree><a><b><c>x</c></b></a></tree>", "tree/a/b/c"),
    ],
)
def test_bad_values_are_refused_naming_the_place(xml: str, where: str) -> None:
    cls: type[XmlElement] = Tree if xml.startswith("<tree") else Leaf
    with pytest.raises(XmlModelError, match=where):
        cls.from_xml(xml)


def test_text_and_attribute_share_one_sub_element() -> None:
    out = Tree(label="hello", label_lang="en").to_xml()
    assert canon(out) == canon('<tree><label lang="en">hello</label></tree>')
    assert Tree.from_xml(out) == Tree(label="hello", label_lang="en")


def test_deep_path_is_created_and_read() -> None:
    out = Tree(deep=5).to_xml()
    assert canon(out) == canon("<tree><a><b><c>5</c></b></a></tree>")
    assert Tree.from_xml(out).deep == 5


def test_none_writes_nothing() -> None:
    assert canon(Tree(label_lang=None, deep=None).to_xml()) == "<tree></tree>"


# --- flags, children, order -------------------------------------------------------------------


def test_flags() -> None:
    assert Tree.from_xml("<tree><marker/><x><y/></x></tree>") == Tree(
        marker=True, nested_marker=True
    )
    assert Tree.from_xml("<tree><x/></tree>") == Tree()
    assert canon(Tree(marker=False).to_xml()) == "<tree></tree>"
    assert canon(Tree(nested_marker=True).to_xml()) == "<tree><x><y></y></x></tree>"


def test_child_and_children() -> None:
    xml = '<tree><leaf name="one"/><leaves><leaf name="a"/><leaf name="b"/></leaves></tree>'
    tree = Tree.from_xml(xml)
    assert tree.leaf == Leaf(name="one")
    assert [leaf.name for leaf in tree.leaves] == ["a", "b"]
    assert canon(tree.to_xml()) == canon(xml)


def test_empty_children_list_writes_no_container() -> None:
    assert canon(Tree(leaves=[]).to_xml()) == "<tree></tree>"


def test_children_default_lists_are_not_shared() -> None:
    first, second = Tree(), Tree()
    first.leaves.append(Leaf())
    assert second.leaves == []


def test_output_follows_declaration_order_not_input_order() -> None:
    xml = '<tree><leaves><leaf/></leaves><marker/><leaf name="x"/><label>l</label></tree>'
    out = Tree.from_xml(xml).to_element()
    assert [e.tag for e in out] == ["label", "marker", "leaf", "leaves"]


def test_unknown_elements_and_attributes_are_dropped() -> None:
    leaf = Leaf.from_xml('<leaf name="n" colour="red"><extra/>text</leaf>')
    assert leaf == Leaf(name="n")  # text after a child element is that child's tail, not ours
    assert canon(leaf.to_xml()) == '<leaf name="n"></leaf>'


# --- documents, escaping, namespaces ----------------------------------------------------------


def test_to_xml_is_indented_without_declaration() -> None:
    out = Domain(name="a", os=Os(type="hvm")).to_xml()
    assert out.splitlines() == [
        "<domain>",
        "  <name>a</name>",
        "  <os>",
        "    <type>hvm</type>",
        "  </os>",
        "</domain>",
    ]


def test_special_characters_are_escaped_by_construction() -> None:
    nasty = """a<b & "c" 'd' ]]> </title><x>"""
    domain = Domain(title=nasty, os=Os(cmdline=nasty))
    domain.metadata = InstanceMetadata(flavor_name=nasty)
    out = domain.to_xml()
    assert "<x>" not in out
    assert "<title>a&lt;b &amp; \"c\" 'd' ]]&gt; &lt;/title&gt;&lt;x&gt;</title>" in out
    assert "name=\"a&lt;b &amp; &quot;c&quot; 'd' ]]&gt; &lt;/title&gt;&lt;x&gt;\"" in out
    assert Domain.from_xml(out) == domain


def test_characters_xml_cannot_carry_are_refused() -> None:
    with pytest.raises(XmlModelError, match="cmdline"):
        Os(cmdline="quiet\x00").to_xml()


def test_wrong_python_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="size"):
        Leaf(size="3").to_xml()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="size"):
        Leaf(size=True).to_xml()
    with pytest.raises(TypeError, match="leaf"):
        Tree(leaf=Os()).to_xml()  # type: ignore[arg-type]


def test_metadata_is_in_filemem_namespace() -> None:
    out = Domain(metadata=InstanceMetadata(name="vm", vcpus=2)).to_xml()
    root = ET.fromstring(out)
    instance = root.find(f"metadata/{{{FILEMEM_NS}}}instance")
    assert instance is not None
    assert instance.findtext(f"{{{FILEMEM_NS}}}name") == "vm"
    assert instance.findtext(f"{{{FILEMEM_NS}}}flavor/{{{FILEMEM_NS}}}vcpus") == "2"
    assert f'xmlns:filemem="{FILEMEM_NS}"' in out
    assert "<filemem:instance>" in out


def test_metadata_prefix_does_not_matter_on_parse() -> None:
    xml = (
        f'<domain><metadata><fm:instance xmlns:fm="{FILEMEM_NS}"><fm:name>vm</fm:name>'
        "<name>not ours</name></fm:instance></metadata></domain>"
    )
    assert Domain.from_xml(xml).metadata == InstanceMetadata(name="vm")


def test_wrong_root_and_malformed_xml() -> None:
    with pytest.raises(XmlModelError, match="expected element <domain>"):
        Domain.from_xml("<network/>")
    with pytest.raises(XmlModelError, match="not well-formed"):
        Domain.from_xml("<domain><name></domain>")


def test_xml_declaration_is_accepted_on_parse() -> None:
    assert Domain.from_xml('<?xml version="1.0" encoding="UTF-8"?>\n<domain/>') == Domain()


# --- declarations -----------------------------------------------------------------------------


def test_undeclared_field_is_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="plain"):

        @xml_element
        class Bad(XmlElement):
            TAG = "bad"
            plain: str | None = None


def test_non_scalar_attribute_is_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="not str, int or bool"):

        @xml_element
        class Bad(XmlElement):
            TAG = "bad"
            values: list[str] = attr("v")


def test_flag_without_path_is_refused() -> None:
    with pytest.raises(TypeError, match="flag needs a path"):

        @xml_element
        class Bad(XmlElement):
            TAG = "bad"
            on: bool = flag("")


def test_class_without_tag_cannot_be_written() -> None:
    with pytest.raises(TypeError, match="TAG"):
        CharDevice(type="pty").to_xml()


def test_local_class_with_future_annotations_works() -> None:
    @xml_element
    class Local(XmlElement):
        TAG = "local"
        count: int | None = attr("count")

    assert Local.from_xml('<local count="4"/>').count == 4
