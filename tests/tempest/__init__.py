"""Tempest, OpenStack's conformance suite, against filemem (issue 20)."""
