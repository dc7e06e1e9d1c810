"""Page size from flavor and image (nova's rule), and where it is enforced: guest config, the
scheduler's request, and the API (glance property, 400 at create and rebuild, agent view)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filemem.api.handlers.server_views import _image_view
from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image
from filemem.common.page_size import PageSizeForbidden, requested_page_size
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.db.models import Image as ImageRow
from filemem.exceptions import InvalidGuestConfig
from filemem.scheduler import RequestSpec, Scheduler, build_request
from filemem.scheduler.filters import FileBackedMemoryFilter
from filemem.scheduler.host_state import HostRecord, HostState
from filemem.virt.guest_config import build_domain
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app

FB = "COMPUTE_MEM_BACKING_FILE"
FILE_HOST = HostFacts(virt_type="qemu", file_backed_memory_mb=4096, discard_supported=True)
RAM_HOST = HostFacts(virt_type="kvm", file_backed_memory_mb=0, discard_supported=True)


# --- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "image", "expected"),
    [
        (None, None, None),
        ("large", None, "large"),
        ("2MB", None, "2MB"),
        ("small", None, "small"),
        ("any", "2MB", "2MB"),
        ("large", "1GB", "1GB"),
        ("LARGE", "2048", "2048"),
        ("any", "small", "small"),  # nova returns the image's choice, whatever it is
    ],
)
def test_requested_page_size_follows_nova(
    flavor: str | None, image: str | None, expected: str | None
) -> None:
    assert requested_page_size(flavor, image) == expected


@pytest.mark.parametrize(
    ("flavor", "image", "against"),
    [(None, "2MB", "<empty>"), ("small", "large", "small"), ("2MB", "2MB", "2MB")],
)
def test_image_may_choose_only_under_large_or_any(
    flavor: str | None, image: str, against: str
) -> None:
    with pytest.raises(PageSizeForbidden) as info:
        requested_page_size(flavor, image, flavor_name="m1", image_name="img")
    message = str(info.value)
    assert message.startswith(f"Page size {image} forbidden against '{against}'")
    assert "flavor 'm1'" in message and "image 'img'" in message
    assert f"hw_mem_page_size={image}" in message


# --- guest config -----------------------------------------------------------------------------


def guest(flavor_value: str | None, image_value: str | None) -> GuestRequest:
    specs = {} if flavor_value is None else {"hw:mem_page_size": flavor_value}
    return GuestRequest(
        name="vm1",
        uuid="6c1b3a3e-8d0f-4c55-9a53-1e1d2b8f0a11",
        flavor=Flavor(name="tiny", vcpus=1, memory_mb=256, extra_specs=specs),
        image=Image(kind="kernel", kernel=Path("/k"), name="img", mem_page_size=image_value),
        console_log=Path("/log"),
    )


@pytest.mark.parametrize(("flavor", "image"), [(None, "2MB"), ("any", "small"), ("any", "1GB")])
def test_an_image_page_size_is_refused_on_a_file_backed_host(
    flavor: str | None, image: str
) -> None:
    with pytest.raises(InvalidGuestConfig) as info:
        build_domain(guest(flavor, image), FILE_HOST)
    message = str(info.value)
    assert f"image 'img' sets hw_mem_page_size={image!r}" in message
    assert "[libvirt] file_backed_memory" in message


def test_the_image_chooses_the_page_size_under_flavor_any() -> None:
    domain = build_domain(guest("any", "2MB"), RAM_HOST)
    assert domain.memory_backing is not None and domain.memory_backing.hugepages is not None
    (page,) = domain.memory_backing.hugepages.pages
    assert (page.size, page.unit) == (2048, "KiB")


def test_a_forbidden_image_page_size_is_refused_at_spawn_too() -> None:
    with pytest.raises(InvalidGuestConfig, match="forbidden against 'small'"):
        build_domain(guest("small", "2MB"), RAM_HOST)
    with pytest.raises(InvalidGuestConfig, match="forbidden against '<empty>'"):
        build_domain(guest(None, "2MB"), RAM_HOST)


# --- scheduler --------------------------------------------------------------------------------


def spec(flavor: str | None = None, image: str | None = None) -> RequestSpec:
    return RequestSpec(
        "inst",
        "proj",
        "user",
        memory_mb=512,
        vcpus=1,
        extra_specs={} if flavor is None else {"hw:mem_page_size": flavor},
        image_properties={} if image is None else {"hw_mem_page_size": image},
    )


def test_an_image_page_size_forbids_file_backed_hosts_in_placement() -> None:
    assert build_request(spec()).forbidden_traits == frozenset()
    assert build_request(spec(image="2MB")).forbidden_traits == {FB}
    assert build_request(spec("any", "2MB")).forbidden_traits == {FB}


def test_the_filter_names_the_image_property() -> None:
    host = HostState(HostRecord("fb", "rp-fb"), traits=frozenset({FB}))
    only_image = FileBackedMemoryFilter().check(host, build_request(spec(image="2MB")))
    assert only_image is not None
    assert only_image.singular == (
        f"has {FB} but the image asks for huge pages (image hw_mem_page_size=2MB)"
    )
    both = FileBackedMemoryFilter().check(host, build_request(spec("any", "1GB")))
    assert both is not None
    assert "the flavor and image ask for huge pages (hw:mem_page_size=any, image " in both.plural
    plain = HostState(HostRecord("ram", "rp-ram"))
    assert FileBackedMemoryFilter().check(plain, build_request(spec(image="2MB"))) is None


# --- agent view -------------------------------------------------------------------------------


def test_the_agent_view_carries_the_image_page_size_to_the_plan() -> None:
    image_row = ImageRow(
        id="img-1",
        name="huge",
        kind="kernel",
        kernel_path="/k",
        cmdline="",
        properties={"hw_mem_page_size": "2MB"},
    )
    view = _image_view("img-1", image_row).model_dump()
    assert (view["name"], view["mem_page_size"]) == ("huge", "2MB")
    assert _image_view("gone", None).mem_page_size is None
    data = {
        "uuid": "6c1b3a3e-8d0f-4c55-9a53-1e1d2b8f0a11",
        "name": "vm",
        "vm_state": "building",
        "flavor": {"name": "f", "vcpus": 1, "memory_mb": 256, "extra_specs": {}},
        "image": view,
    }
    image = DesiredInstance.from_api(data).image
    assert (image.name, image.mem_page_size) == ("huge", "2MB")


# --- API --------------------------------------------------------------------------------------


def _flavor(app: ServersApp, page_size: str | None) -> str:
    response = app.call(
        "POST",
        "/flavors",
        json={"flavor": {"name": f"p-{page_size}", "ram": 256, "vcpus": 1, "disk": 0}},
    )
    assert response.status_code == 200, response.text
    flavor_id: str = response.json()["flavor"]["id"]
    if page_size is not None:
        specs = {"extra_specs": {"hw:mem_page_size": page_size}}
        set_specs = app.call("POST", f"/flavors/{flavor_id}/os-extra_specs", json=specs)
        assert set_specs.status_code == 200, set_specs.text
    return flavor_id


def _image(app: ServersApp, tmp_path: Path, page_size: str) -> dict[str, object]:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\0" * 64)
    body = {"name": "huge", "kernel_path": str(kernel), "hw_mem_page_size": page_size}
    response = app.client.post("/image/v2/images", json=body)
    assert response.status_code == 201, response.text
    image: dict[str, object] = response.json()
    return image


def test_glance_stores_and_shows_hw_mem_page_size(app: ServersApp, tmp_path: Path) -> None:
    image = _image(app, tmp_path, "2MB")
    assert image["hw_mem_page_size"] == "2MB"
    shown = app.client.get(f"/image/v2/images/{image['id']}").json()
    assert shown["hw_mem_page_size"] == "2MB"
    plain = app.client.get(f"/image/v2/images/{app.image}").json()
    assert "hw_mem_page_size" not in plain
    bad = app.client.post(
        "/image/v2/images",
        json={"name": "bad", "kernel_path": str(tmp_path / "vmlinuz"), "hw_mem_page_size": "huge"},
    )
    assert bad.status_code == 400 and "hw_mem_page_size" in bad.text


@pytest.mark.parametrize(("flavor_page", "against"), [(None, "<empty>"), ("small", "small")])
def test_create_refuses_an_image_page_size_the_flavor_forbids(
    app: ServersApp, tmp_path: Path, flavor_page: str | None, against: str
) -> None:
    image = _image(app, tmp_path, "2MB")
    flavor = _flavor(app, flavor_page)
    body = {"server": {"name": "vm", "flavorRef": flavor, "imageRef": image["id"]}}
    response = app.call("POST", "/servers", json=body)
    assert response.status_code == 400, response.text
    message = response.json()["badRequest"]["message"]
    assert f"Page size 2MB forbidden against '{against}'" in message
    assert "image 'huge' sets hw_mem_page_size=2MB" in message and "flavor 'p-" in message
    assert app.usage() == 0


def test_an_allowed_image_page_size_keeps_the_guest_off_file_backed_hosts(
    app: ServersApp, tmp_path: Path
) -> None:
    image = _image(app, tmp_path, "2MB")
    flavor = _flavor(app, "any")
    server_id = app.boot("plain")  # the fixture's host takes guests without huge pages
    assert app.show(server_id)["status"] == "BUILD"
    assert app.placement.set_traits(app.provider, [FB])
    scheduler = app.ctx.scheduler
    assert isinstance(scheduler, Scheduler)
    scheduler.cache.refresh()  # the cache still has the host's old traits
    body = {"server": {"name": "huge", "flavorRef": flavor, "imageRef": image["id"]}}
    response = app.call("POST", "/servers", json=body)
    assert response.status_code == 202, response.text
    shown = app.show(response.json()["server"]["id"])
    assert shown["status"] == "ERROR"
    assert "image hw_mem_page_size=2MB" in shown["fault"]["message"]
    assert app.usage() == 256


def test_rebuild_refuses_an_image_the_flavor_forbids(app: ServersApp, tmp_path: Path) -> None:
    server_id = app.boot("vm")
    app.set_state(server_id, "active")
    image = _image(app, tmp_path, "1GB")
    body = {"rebuild": {"imageRef": image["id"]}}
    response = app.call("POST", f"/servers/{server_id}/action", json=body)
    assert response.status_code == 400, response.text
    assert "forbidden against '<empty>'" in response.json()["badRequest"]["message"]
