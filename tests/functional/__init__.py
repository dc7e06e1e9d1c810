"""Tests against real libvirtd + QEMU (TCG) and real Placement."""
