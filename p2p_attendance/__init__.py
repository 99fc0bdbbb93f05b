"""P2P Attendance: class attendance from a lecture video, shared across the classroom's computers."""

__version__ = "0.1.0"
APP_NAME = "p2p-attendance"
PROTOCOL_VERSION = 1
