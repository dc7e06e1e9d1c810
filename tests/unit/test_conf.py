"""Configuration: loading, validation naming the option, and the committed sample being current."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import generator

from filemem import conf as filemem_conf
from filemem.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_load_without_a_file() -> None:
    conf = filemem_conf.load(config_files=[])
    assert conf.libvirt.file_backed_memory == 0
    assert conf.ram_allocation_ratio is None
    assert conf.libvirt.file_backed_memory_allocation == "immediate"


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("[libvirt]\nfile_backed_memory = -1\n", "[libvirt] file_backed_memory"),
        ("[libvirt]\nfile_backed_memory = lots\n", "[libvirt] file_backed_memory"),
        ("[libvirt]\nvirt_type = vmware\n", "[libvirt] virt_type"),
        ("[DEFAULT]\nreserved_host_memory_mb = -5\n", "[DEFAULT] reserved_host_memory_mb"),
        (
            "[libvirt]\nfile_backed_memory_allocation = lazy\n",
            "[libvirt] file_backed_memory_allocation",
        ),
    ],
)
def test_invalid_values_are_refused_naming_the_option(
    tmp_path: Path,
    text: str,
    option: str,
) -> None:
    path = tmp_path / "filemem.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        filemem_conf.load(config_files=[str(path)])
    assert option in str(refused.value)


def test_sample_config_is_current(tmp_path: Path) -> None:
    out = tmp_path / "sample.conf"
    generator_conf = REPO / "etc" / "filemem" / "filemem-config-generator.conf"
    generator.main(["--config-file", str(generator_conf), "--output-file", str(out)])
    committed = (REPO / "etc" / "filemem" / "filemem.conf.sample").read_text()
    assert "[keystone_authtoken]" in committed
    assert out.read_text() == committed, (
        "etc/filemem/filemem.conf.sample is stale: regenerate it with "
        "`.venv/bin/oslo-config-generator --config-file "
        "etc/filemem/filemem-config-generator.conf`"
    )
