"""WebRTC service: ``swapcam serve`` and ``swapcam bench-webrtc``.

server (the HTTP app, the serve command, the shared swap sessions) -> peer (one browser's session: control channel,
overload policy, lip sync, teardown) -> tracks (its swapped video and delayed audio); ice (which local addresses ICE
gathers on, for whoever asks); client (a browser stand-in for tests and the benchmark); bench (the benchmark).

Needs the ``webrtc`` extra (aiortc, aiohttp). Nothing here imports torch; modules import aiortc/aiohttp lazily so
that a missing extra is reported as one line by the CLI.
"""
