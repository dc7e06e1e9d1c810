"""libvirt implementation of the hypervisor driver."""
