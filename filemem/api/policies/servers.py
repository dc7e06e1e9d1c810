"""nova's rules for servers, their actions and sub-resources (nova/policies/servers.py,
server_metadata.py, server_tags.py, instance_actions.py, lock_server.py, pause_server.py,
suspend_server.py, admin_actions.py, console_output.py, migrate_server.py,
servers_migrations.py, extended_server_attributes.py)."""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies.base import (
    ADMIN,
    PROJECT_MANAGER_OR_ADMIN,
    PROJECT_MEMBER_OR_ADMIN,
    PROJECT_READER_OR_ADMIN,
    rule,
)

SERVERS = "os_compute_api:servers:%s"
S = "/servers"
ONE = "/servers/{server_id}"
ACT = "/servers/{server_id}/action"
META, TAGS = f"{ONE}/metadata", f"{ONE}/tags"
MIGR = f"{ONE}/migrations"

INDEX = SERVERS % "index"
DETAIL = SERVERS % "detail"
INDEX_ALL_TENANTS = SERVERS % "index:get_all_tenants"
DETAIL_ALL_TENANTS = SERVERS % "detail:get_all_tenants"
ALLOW_ALL_FILTERS = SERVERS % "allow_all_filters"
SHOW = SERVERS % "show"
SHOW_HOST_STATUS = SERVERS % "show:host_status"
CREATE = SERVERS % "create"
CREATE_FORCED_HOST = SERVERS % "create:forced_host"
DELETE = SERVERS % "delete"
UPDATE = SERVERS % "update"
EXTENDED_ATTRIBUTES = "os_compute_api:os-extended-server-attributes"
RESET_STATE = "os_compute_api:os-admin-actions:reset_state"
LOCK = "os_compute_api:os-lock-server:lock"
UNLOCK = "os_compute_api:os-lock-server:unlock"
UNLOCK_OVERRIDE = "os_compute_api:os-lock-server:unlock:unlock_override"
MIGRATE_LIVE = "os_compute_api:os-migrate-server:migrate_live"
MIGRATE_LIVE_HOST = "os_compute_api:os-migrate-server:migrate_live:host"
CONSOLE_OUTPUT = "os_compute_api:os-console-output"

# The rule each server action of filemem needs (nova's names); the action handler checks it.
ACTION_RULES = {
    "os-start": SERVERS % "start",
    "os-stop": SERVERS % "stop",
    "reboot": SERVERS % "reboot",
    "rebuild": SERVERS % "rebuild",
    "resize": SERVERS % "resize",
    "confirmResize": SERVERS % "confirm_resize",
    "revertResize": SERVERS % "revert_resize",
    "trigger_crash_dump": SERVERS % "trigger_crash_dump",
    "pause": "os_compute_api:os-pause-server:pause",
    "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend",
    "resume": "os_compute_api:os-suspend-server:resume",
    "lock": LOCK,
    "unlock": UNLOCK,
    "os-resetState": RESET_STATE,
    "os-getConsoleOutput": CONSOLE_OUTPUT,
    "os-migrateLive": MIGRATE_LIVE,
    "createImage": SERVERS % "create_image",
    "createBackup": "os_compute_api:os-create-backup",
}
_ACTION_TEXT = {
    "os-start": "Start a server",
    "os-stop": "Stop a server",
    "reboot": "Reboot a server",
    "rebuild": "Rebuild a server",
    "resize": "Resize a server",
    "confirmResize": "Confirm a server resize",
    "revertResize": "Revert a server resize",
    "trigger_crash_dump": "Trigger crash dump in a server",
    "pause": "Pause a server",
    "unpause": "Unpause a paused server",
    "suspend": "Suspend server",
    "resume": "Resume suspended server",
    "lock": "Lock a server",
    "unlock": "Unlock a server",
    "os-resetState": "Reset the state of a given server",
    "os-getConsoleOutput": "Show console output for a server",
    "os-migrateLive": "Live migrate a server to a new host without a reboot",
    "createImage": "Create an image from a server",
    "createBackup": "Create a back up of a server",
}
ACTION_DEFAULTS = {
    **dict.fromkeys(ACTION_RULES, PROJECT_MEMBER_OR_ADMIN),
    "os-resetState": ADMIN,
    "os-migrateLive": PROJECT_MANAGER_OR_ADMIN,
}

_actions = [
    rule(ACTION_RULES[name], ACTION_DEFAULTS[name], text, ("POST", f"{ACT} ({name})"))
    for name, text in _ACTION_TEXT.items()
]

_servers = [
    rule(INDEX, PROJECT_READER_OR_ADMIN, "List all servers", ("GET", S)),
    rule(
        DETAIL,
        PROJECT_READER_OR_ADMIN,
        "List all servers with detailed information",
        ("GET", f"{S}/detail"),
    ),
    rule(INDEX_ALL_TENANTS, ADMIN, "List all servers for all projects", ("GET", S)),
    rule(
        DETAIL_ALL_TENANTS,
        ADMIN,
        "List all servers with detailed information for all projects",
        ("GET", f"{S}/detail"),
    ),
    rule(
        ALLOW_ALL_FILTERS,
        ADMIN,
        "Allow all filters when listing servers (host, ...)",
        ("GET", S),
        ("GET", f"{S}/detail"),
    ),
    rule(SHOW, PROJECT_READER_OR_ADMIN, "Show a server", ("GET", ONE)),
    rule(
        SHOW_HOST_STATUS,
        ADMIN,
        "Show a server with the host_status attribute (2.16)",
        ("GET", ONE),
        ("GET", f"{S}/detail"),
    ),
    rule(
        EXTENDED_ATTRIBUTES,
        ADMIN,
        "Return the extended attributes of a server (OS-EXT-SRV-ATTR:host, ...)",
        ("GET", ONE),
        ("GET", f"{S}/detail"),
    ),
    rule(CREATE, PROJECT_MEMBER_OR_ADMIN, "Create a server", ("POST", S)),
    rule(
        CREATE_FORCED_HOST,
        ADMIN,
        "Create a server on the host named in availability_zone (zone:host)",
        ("POST", S),
    ),
    rule(DELETE, PROJECT_MEMBER_OR_ADMIN, "Delete a server", ("DELETE", ONE)),
    rule(UPDATE, PROJECT_MEMBER_OR_ADMIN, "Update a server", ("PUT", ONE)),
    rule(
        UNLOCK_OVERRIDE,
        ADMIN,
        "Unlock a server locked by an administrator",
        ("POST", f"{ACT} (unlock)"),
    ),
    rule(
        MIGRATE_LIVE_HOST,
        ADMIN,
        "Live migrate a server to a named host",
        ("POST", f"{ACT} (os-migrateLive)"),
    ),
]

_sub = [
    rule(
        "os_compute_api:server-metadata:index",
        PROJECT_READER_OR_ADMIN,
        "List all metadata of a server",
        ("GET", META),
    ),
    rule(
        "os_compute_api:server-metadata:show",
        PROJECT_READER_OR_ADMIN,
        "Show metadata for a server",
        ("GET", f"{META}/{{key}}"),
    ),
    rule(
        "os_compute_api:server-metadata:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create metadata for a server",
        ("POST", META),
    ),
    rule(
        "os_compute_api:server-metadata:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace metadata for a server",
        ("PUT", META),
    ),
    rule(
        "os_compute_api:server-metadata:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Update metadata from a server",
        ("PUT", f"{META}/{{key}}"),
    ),
    rule(
        "os_compute_api:server-metadata:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete metadata from a server",
        ("DELETE", f"{META}/{{key}}"),
    ),
    rule(
        "os_compute_api:os-server-tags:index",
        PROJECT_READER_OR_ADMIN,
        "List all tags for given server",
        ("GET", TAGS),
    ),
    rule(
        "os_compute_api:os-server-tags:show",
        PROJECT_READER_OR_ADMIN,
        "Check tag existence on the server",
        ("GET", f"{TAGS}/{{tag}}"),
    ),
    rule(
        "os_compute_api:os-server-tags:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace all tags on specified server with the new set of tags",
        ("PUT", TAGS),
    ),
    rule(
        "os_compute_api:os-server-tags:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Add a single tag to the server if server has no specified tag",
        ("PUT", f"{TAGS}/{{tag}}"),
    ),
    rule(
        "os_compute_api:os-server-tags:delete_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete all the server tags",
        ("DELETE", TAGS),
    ),
    rule(
        "os_compute_api:os-server-tags:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a single tag from the specified server",
        ("DELETE", f"{TAGS}/{{tag}}"),
    ),
    rule(
        "os_compute_api:os-instance-actions:list",
        PROJECT_READER_OR_ADMIN,
        "List actions for a server",
        ("GET", f"{ONE}/os-instance-actions"),
    ),
    rule(
        "os_compute_api:os-instance-actions:show",
        PROJECT_READER_OR_ADMIN,
        "Show action details for a server",
        ("GET", f"{ONE}/os-instance-actions/{{request_id}}"),
    ),
    rule(
        "os_compute_api:os-instance-actions:events",
        ADMIN,
        "Add events details in action details for a server",
        ("GET", f"{ONE}/os-instance-actions/{{request_id}}"),
    ),
    rule(
        "os_compute_api:servers:migrations:index",
        PROJECT_MANAGER_OR_ADMIN,
        "Lists in-progress live migrations for a given server",
        ("GET", MIGR),
    ),
    rule(
        "os_compute_api:servers:migrations:show",
        ADMIN,
        "Show details for an in-progress live migration for a given server",
        ("GET", f"{MIGR}/{{migration_id}}"),
    ),
    rule(
        "os_compute_api:servers:migrations:force_complete",
        PROJECT_MANAGER_OR_ADMIN,
        "Force an in-progress live migration for a given server to complete",
        ("POST", f"{MIGR}/{{migration_id}}/action (force_complete)"),
    ),
    rule(
        "os_compute_api:servers:migrations:delete",
        PROJECT_MANAGER_OR_ADMIN,
        "Delete(Abort) an in-progress live migration",
        ("DELETE", f"{MIGR}/{{migration_id}}"),
    ),
]


def list_rules() -> list[policy.RuleDefault]:
    return [*_servers, *_actions, *_sub]
