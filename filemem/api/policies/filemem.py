"""filemem's own rules: routes nova has no rule for (flavor and image reads), glance-style
image upload, the agent API, the Placement proxy and the identity stubs."""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies.base import ADMIN, RULE_ANY, rule

FLAVORS_INDEX = "filemem:flavors:index"
FLAVORS_SHOW = "filemem:flavors:show"
IMAGES_INDEX = "filemem:images:index"
IMAGES_SHOW = "filemem:images:show"
IMAGE_UPLOAD = "filemem:images:upload"
AGENT = "filemem:agent"
PLACEMENT_PROXY = "filemem:placement:proxy"
IDENTITY_PROJECTS = "filemem:identity:projects"

_rules = [
    rule(
        FLAVORS_INDEX,
        RULE_ANY,
        "List flavors (nova has no rule: any caller; private "
        "flavors are listed only to projects with access)",
        ("GET", "/flavors"),
        ("GET", "/flavors/detail"),
    ),
    rule(
        FLAVORS_SHOW,
        RULE_ANY,
        "Show a flavor (nova has no rule: any caller; a private "
        "flavor only to projects with access)",
        ("GET", "/flavors/{flavor_id}"),
    ),
    rule(
        IMAGES_INDEX,
        RULE_ANY,
        "List images (nova's image proxy and glance's /image/v2/images)",
        ("GET", "/images"),
        ("GET", "/images/detail"),
        ("GET", "/image/v2/images"),
    ),
    rule(
        IMAGES_SHOW,
        RULE_ANY,
        "Show an image",
        ("GET", "/images/{image_id}"),
        ("GET", "/image/v2/images/{image_id}"),
    ),
    rule(
        IMAGE_UPLOAD,
        ADMIN,
        "Register an image from a kernel on the API host's image directories",
        ("POST", "/image/v2/images"),
    ),
    rule(
        AGENT,
        ADMIN,
        "Call the agent API (/filemem/v1) with a credential that is not a "
        "host credential (host credentials are authorized per host, not by policy)",
        ("PUT", "/filemem/v1/services/{host}"),
        ("GET", "/filemem/v1/hosts/{host}/instances"),
    ),
    rule(
        PLACEMENT_PROXY,
        ADMIN,
        "Use the Placement API through filemem-api",
        ("GET", "/placement/{path}"),
    ),
    rule(
        IDENTITY_PROJECTS,
        RULE_ANY,
        "List the projects of the identity stub (the openstack CLI's project lookups)",
        ("GET", "/identity/v3/projects"),
    ),
]


def list_rules() -> list[policy.RuleDefault]:
    return list(_rules)
