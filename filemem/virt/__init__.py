"""Hypervisor layer: the driver interface, the libvirt implementation and the guest XML model."""
