"""Every policy default of filemem: nova's rule names and new defaults, and filemem's own.

`list_rules` is the `oslo.policy.policies` entry point (namespace `filemem`).
"""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies import base, compute, filemem, network, servers


def list_rules() -> list[policy.RuleDefault]:
    return [
        *base.rules,
        *servers.list_rules(),
        *compute.list_rules(),
        *filemem.list_rules(),
        *network.list_rules(),
    ]
