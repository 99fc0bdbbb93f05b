"""The distributed part (pyzmq): the requester, the volunteers, their protocol and its security."""
