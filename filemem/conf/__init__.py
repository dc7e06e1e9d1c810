"""Configuration: one module per option group; nothing is registered at import time."""

from __future__ import annotations

import os
from collections.abc import Sequence

from oslo_config import cfg
from oslo_policy import opts as policy_opts

from filemem.conf import (
    api,
    compute,
    database,
    default,
    image_cache,
    libvirt,
    metadata,
    network,
    neutron,
    placement,
    quota,
    scheduler,
)
from filemem.exceptions import ConfigError

_GROUP_MODULES = (
    default,
    libvirt,
    placement,
    compute,
    api,
    database,
    scheduler,
    quota,
    network,
    image_cache,
    metadata,
    neutron,
)

DEFAULT_CONFIG_FILE = "/etc/filemem/filemem.conf"


def register_opts(conf: cfg.ConfigOpts) -> None:
    for module in _GROUP_MODULES:
        conf.register_opts(module.OPTS, group=module.GROUP)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator: filemem's groups and oslo.policy's [oslo_policy]
    (registered by the policy Enforcer itself)."""
    ours = [(module.GROUP, list(module.OPTS)) for module in _GROUP_MODULES]
    return [*ours, *policy_opts.list_opts()]


def load(args: Sequence[str] = (), config_files: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every option registered and the given files parsed."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    if config_files is None:
        config_files = [DEFAULT_CONFIG_FILE] if os.path.exists(DEFAULT_CONFIG_FILE) else []
    try:
        conf(list(args), project="filemem", default_config_files=list(config_files), use_env=False)
    except cfg.Error as exc:
        raise ConfigError("configuration", str(exc)) from exc
    validate(conf)
    return conf


def validate(conf: cfg.ConfigOpts) -> None:
    """oslo.config checks values only when read: read them all now, naming the bad one."""
    for module in _GROUP_MODULES:
        group = conf if module.GROUP is None else getattr(conf, module.GROUP)
        for opt in module.OPTS:
            try:
                getattr(group, opt.dest)
            except (cfg.ConfigFileValueError, ValueError) as exc:
                section = module.GROUP or "DEFAULT"
                raise ConfigError(f"[{section}] {opt.name}", f"invalid value: {exc}") from exc
