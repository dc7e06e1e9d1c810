"""oslo.policy's tools find filemem through pyproject's entry points (the sample is current,
the generators read a policy file), and a policy file overrides a default in the API."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from oslo_policy import policy

from filemem.api.policy import make_enforcer
from filemem.conf import load
from tests.unit import tenants_app

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "etc" / "filemem" / "policy.yaml.sample"
BIN = Path(sys.executable).parent


def _entry_points(tmp_path: Path) -> dict[str, str]:
    """A dist-info carrying pyproject's oslo.policy entry points (the shared virtualenv's
    installed metadata predates them), on PYTHONPATH after the worktree."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {k: v for k, v in project["entry-points"].items() if k.startswith("oslo.policy")}
    assert set(groups) == {"oslo.policy.policies", "oslo.policy.enforcer"}, groups
    info = tmp_path / "site" / "filemem_policy_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: filemem-policy-ep\nVersion: 0\n")
    lines = []
    for group, points in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path / 'site'}"}


def _tool(env: dict[str, str], name: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / name), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def test_sample_policy_is_current(tmp_path: Path) -> None:
    env = _entry_points(tmp_path)
    out = tmp_path / "policy.yaml.sample"
    _tool(env, "oslopolicy-sample-generator", "--namespace", "filemem", "--output-file", str(out))
    assert out.read_text() == SAMPLE.read_text(), (
        "etc/filemem/policy.yaml.sample is stale: regenerate it with "
        "`oslopolicy-sample-generator --namespace filemem --output-file "
        "etc/filemem/policy.yaml.sample` (README, Projects, policy and quotas)"
    )
    assert '#"os_compute_api:servers:create": "rule:project_member_or_admin"' in out.read_text()


def test_generators_read_the_policy_file_of_filemem_conf(tmp_path: Path) -> None:
    env = _entry_points(tmp_path)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        '"os_compute_api:os-hypervisors:list": "rule:project_member_or_admin"\n'
        '"os_compute_api:servers:show": "rule:project_reader_or_admin"\n'
    )
    conf = tmp_path / "filemem.conf"
    conf.write_text(f"[oslo_policy]\npolicy_file = {policy_file}\n")
    effective = _tool(
        env, "oslopolicy-policy-generator", "--namespace", "filemem", "--config-file", str(conf)
    ).stdout
    assert '"os_compute_api:os-hypervisors:list": "rule:project_member_or_admin"' in effective
    assert '"os_compute_api:os-hypervisors:show": "rule:context_is_admin"' in effective
    redundant = _tool(
        env, "oslopolicy-list-redundant", "--namespace", "filemem", "--config-file", str(conf)
    )
    assert '"os_compute_api:servers:show": "rule:project_reader_or_admin"' in redundant.stdout
    assert "os-hypervisors:list" not in redundant.stdout


def test_scope_and_new_defaults_are_enforced(tmp_path: Path) -> None:
    """oslo.policy 6 always enforces scope (its enforce_scope option is gone); the new
    defaults are kept: every rule is project-scoped, a system-scoped token is refused."""
    conf = tmp_path / "filemem.conf"
    conf.write_text("")
    enforcer = make_enforcer(load(config_files=[str(conf)]))
    assert enforcer.conf.oslo_policy.enforce_new_defaults is True
    rule = "os_compute_api:os-hypervisors:list"
    project = {"roles": ["admin"], "project_id": "p", "user_id": "u"}
    assert enforcer.authorize(rule, {}, project) is True
    system = {"roles": ["admin"], "system": "all", "user_id": "u"}
    assert enforcer.authorize(rule, {}, system) is False
    with pytest.raises(policy.InvalidScope):
        enforcer.authorize(rule, {}, system, do_raise=True)


def test_a_policy_file_overrides_a_default_in_the_api(
    embedded_placement: object, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"os_compute_api:os-hypervisors:list": "rule:project_member_or_admin"\n')
    conf = f"[oslo_policy]\npolicy_file = {policy_file}\n"
    for app in tenants_app.tenants_app(tmp_path, embedded_placement, conf):  # type: ignore[arg-type]
        listed = app.call("member_a", "GET", "/os-hypervisors")
        assert listed.status_code == 200, listed.text
        assert [h["hypervisor_hostname"] for h in listed.json()["hypervisors"]] == [app.host]
        assert app.call("reader_a", "GET", "/os-hypervisors").status_code == 403
        assert app.call("member_a", "GET", "/os-hypervisors/detail").status_code == 403
