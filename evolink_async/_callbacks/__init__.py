"""Callbacks: the receiver that turns the server's task callbacks into the tracker's updates.

It sits above the watching layer (it pushes into trackers) and below the clients (which give each
submit its callback URL); its aiohttp and ASGI entry points are thin adapters over one handler.
"""
