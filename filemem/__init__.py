"""filemem: QEMU/KVM guests whose memory lives in files on a fast backing store."""

__version__ = "0.1.0"
