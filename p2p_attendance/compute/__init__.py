"""The face work, no sockets: video sampling, detection, encoding, tracking and matching."""
