"""WebRTC service: ``swapcam serve`` (aiohttp + aiortc server and the static demo page) and ``swapcam bench-webrtc``.

Needs the ``webrtc`` extra (aiortc, aiohttp). Nothing here imports torch; modules import aiortc/aiohttp lazily so
that a missing extra is reported as one line by the CLI.
"""
