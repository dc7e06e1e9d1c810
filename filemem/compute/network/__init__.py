"""The host side of guest networking: a driver plugs a guest's ports (bridge, DHCP, NAT)."""
