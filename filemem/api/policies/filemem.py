"""filemem's own rules: routes nova has no rule for (flavor and image reads), glance-style
image upload, the agent API, the Placement proxy and the identity stubs."""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies.base import ADMIN, PROJECT_MEMBER_OR_ADMIN, RULE_ANY, rule

FLAVORS_INDEX = "filemem:flavors:index"
FLAVORS_SHOW = "filemem:flavors:show"
IMAGES_INDEX = "filemem:images:index"
IMAGES_SHOW = "filemem:images:show"
IMAGE_UPLOAD = "filemem:images:upload"
# glance's add_image, modify_image, delete_image, upload_image and download_image: a member
# acts in their own project (the handlers check the image's owner), the admin everywhere.
IMAGE_ADD = "filemem:images:add"
IMAGE_MODIFY = "filemem:images:modify"
IMAGE_DELETE = "filemem:images:delete"
IMAGE_UPLOAD_DATA = "filemem:images:upload_data"
IMAGE_DOWNLOAD = "filemem:images:download"
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
        "Register an image by path (kernel_path or disk_path below [api] image_dirs)",
        ("POST", "/image/v2/images"),
    ),
    rule(
        IMAGE_ADD,
        PROJECT_MEMBER_OR_ADMIN,
        "Create an image in one's own project (its data uploaded next)",
        ("POST", "/image/v2/images"),
    ),
    rule(
        IMAGE_MODIFY,
        PROJECT_MEMBER_OR_ADMIN,
        "Update an image of one's own project (making it public: the admin only)",
        ("PATCH", "/image/v2/images/{image_id}"),
    ),
    rule(
        IMAGE_DELETE,
        PROJECT_MEMBER_OR_ADMIN,
        "Delete an image of one's own project",
        ("DELETE", "/image/v2/images/{image_id}"),
    ),
    rule(
        IMAGE_UPLOAD_DATA,
        PROJECT_MEMBER_OR_ADMIN,
        "Upload the data of a queued image of one's own project",
        ("PUT", "/image/v2/images/{image_id}/file"),
    ),
    rule(
        IMAGE_DOWNLOAD,
        RULE_ANY,
        "Download an image's data (an image the caller may see)",
        ("GET", "/image/v2/images/{image_id}/file"),
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
