"""[api] options of filemem-api: auth strategy, admin token, listen address, public endpoint,
liveness, the agents' long-poll, console-request bounds, and the HTTP server's timeouts and
connection limit."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "api"

AUTH_TOKEN = "token"  # noqa: S105 - a strategy name, not a secret
AUTH_KEYSTONE = "keystone"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "auth_strategy",
        default=AUTH_TOKEN,
        choices=[
            (
                AUTH_TOKEN,
                "every client proves itself with [api] admin_token (and agents with "
                "host credentials); right for `filemem up` and small set-ups",
            ),
            (
                AUTH_KEYSTONE,
                "users log in through Keystone: keystonemiddleware's auth_token, "
                "configured in [keystone_authtoken], validates each X-Auth-Token",
            ),
        ],
        help="How filemem-api authenticates its callers (nova's [api] auth_strategy; 'token' "
        "stands where nova has the deprecated 'noauth2', but it checks a real secret). With "
        "'keystone', [api] admin_token must be unset and [keystone_authtoken] "
        "www_authenticate_uri and auth_type set.",
    ),
    cfg.StrOpt(
        "admin_token",
        default="",
        secret=True,
        help="Static token every client sends as X-Auth-Token (openstack --os-auth-type "
        "admin_token, agents, the filemem CLI). Required with [api] auth_strategy = token; "
        "use a long random value. Must be unset with auth_strategy = keystone. Only the "
        "version documents are served without a token.",
    ),
    cfg.HostAddressOpt(
        "bind_host",
        default="127.0.0.1",
        help="Address filemem-api listens on.",
    ),
    cfg.PortOpt(
        "bind_port",
        default=8774,
        help="TCP port filemem-api listens on; 0 picks a free one (printed at start).",
    ),
    cfg.StrOpt(
        "public_endpoint",
        default="",
        help="Base URL clients reach the API at (e.g. behind a load balancer), used in links "
        "of the responses. Empty means the URL of each request.",
    ),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="Seconds since a compute agent was last heard from (registration, heartbeat or "
        "watch) after which its host counts as down: no new guests are scheduled there and "
        "os-services/os-hypervisors report state 'down'.",
    ),
    cfg.ListOpt(
        "image_dirs",
        default=["/var/lib/filemem/images"],
        help="Directories images may be registered from (POST /image/v2/images). A kernel, initrd "
        "or disk must resolve (symlinks followed) to a regular file below one of them, and the "
        "resolved path is what is stored; a disk must be a plain raw or qcow2 file of its "
        "declared format with no backing or data file. Agents check again before each boot "
        "that the path still resolves to itself, so the API can never be used to hand an "
        "arbitrary host file to a guest.",
    ),
    cfg.BoolOpt(
        "enable_instance_password",
        default=True,
        help="Answer a server create and rebuild with adminPass (nova's option): the one the "
        "request gave, else a generated one. filemem, like nova's libvirt driver without "
        "password injection, does not set it inside the guest.",
    ),
    cfg.BoolOpt(
        "change_notifications",
        default=True,
        help="Wake a waiting agent long-poll (GET /filemem/v1/hosts/{host}/instances) as soon "
        "as a change of its host commits: at once in this process, and through PostgreSQL "
        "LISTEN/NOTIFY (channel filemem_changes) from other filemem-api processes on the same "
        "database. Off: waiting long-polls only re-read the database every "
        "long_poll_recheck_interval seconds.",
    ),
    cfg.IntOpt(
        "max_console_requests",
        default=32,
        min=1,
        help="Console-output requests (os-getConsoleOutput) that may wait for agents at once "
        "in one filemem-api process; more are refused at once with 429. A wait holds no "
        "thread, but each one re-reads the database until its agent answers.",
    ),
    cfg.IntOpt(
        "max_console_requests_per_server",
        default=4,
        min=1,
        help="Console-output requests of one server that may wait for its agent at once in "
        "one filemem-api process; more are refused at once with 429.",
    ),
    cfg.FloatOpt(
        "long_poll_recheck_interval",
        default=5.0,
        min=0.01,
        max=30.0,
        help="Longest time between database re-reads of a waiting agent long-poll (each wait "
        "is jittered between half and all of it, so waiters that began together spread). With "
        "change_notifications this is only the safety net (a lost notice delays a change by "
        "up to this much, never loses it); without, it is the polling interval and bounds "
        "how late an agent hears of a change (filemem polled every 0.25 s before "
        "notifications).",
    ),
    cfg.IntOpt(
        "build_timeout",
        default=300,
        min=1,
        help="Seconds after its creation a server may still be scheduling (BUILD, no host) "
        "before every filemem-api process takes it for a build a process abandoned (killed "
        "or crashed during POST /servers): it goes to ERROR with a fault and its claim in "
        "Placement is released. A live process schedules within seconds; keep this well "
        "above the longest scheduling, as a slower one loses its build to ERROR.",
    ),
    cfg.IntOpt(
        "build_cleanup_interval",
        default=60,
        min=1,
        help="Seconds between two sweeps for abandoned builds (build_timeout) and for "
        "Placement claims of servers that have no row any more; one sweep runs at start.",
    ),
    cfg.FloatOpt(
        "client_header_timeout",
        default=5.0,
        min=0.1,
        max=300.0,
        help="Seconds a client has to send a request's line and headers, counted from the "
        "connection (or from its first byte after the previous answer). A connection still "
        "without a complete head then is closed, so idle and slowly trickling ('slowloris') "
        "connections cannot hold the API's connection slots.",
    ),
    cfg.FloatOpt(
        "client_body_timeout",
        default=30.0,
        min=0.1,
        max=3600.0,
        help="Seconds a request body may take to arrive in full once the headers are in; a "
        "slower body is answered 408 and its connection closed. Bodies are at most 1 MiB "
        "(but image uploads, bounded by image_size_cap instead).",
    ),
    cfg.IntOpt(
        "image_size_cap",
        default=1024**4,
        min=1,
        help="Largest image, in bytes, that PUT /image/v2/images/{id}/file accepts (glance's "
        "option of that name and default, 1 TiB); a larger upload is answered 413 and nothing "
        "is kept. Uploads are stored under <state_path>/image-store, where a full file system "
        "also answers 413: lower this to what that file system should hold for one image.",
    ),
    cfg.IntOpt(
        "keep_alive_timeout",
        default=5,
        min=1,
        max=300,
        help="Seconds an idle kept-alive connection stays open after an answer. Agents' "
        "long-polls are requests in progress, not idle, and are not cut by it.",
    ),
    cfg.IntOpt(
        "max_connections",
        default=1000,
        min=2,
        help="Most connections (or requests in progress) served at once; a request beyond "
        "it is answered 503 at once. Each agent holds one connection for its long-poll: "
        "allow for every host plus clients, and keep it below the process's open-file "
        "limit (ulimit -n), which also holds database and Placement connections.",
    ),
    cfg.IntOpt(
        "max_header_bytes",
        default=16384,
        min=1024,
        help="Largest request line plus headers, in bytes; a bigger head is answered 400 "
        "(h11's max_incomplete_event_size). Keystone tokens fit well within the default.",
    ),
]
