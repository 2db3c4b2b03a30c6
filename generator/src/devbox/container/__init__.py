"""What runs inside a container: the activity monitor and keep-alive leases.

`activity` holds the file formats both sides share (docs/container-interface.md): the
monitor and keepalive write them inside the container, root reads them on the host.
"""
