"""Several simulated hosts on one machine: namespaces, private libvirtds, a control plane."""
