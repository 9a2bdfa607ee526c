"""Stream helpers for Amaranth-simulator testbenches: drive and collect
``amaranth.lib.stream`` ports under seeded random valid gaps and ready stalls.

Transfer rule checked by these helpers' users: a beat moves on a clock edge where
``valid & ready``; the producer holds payload and valid until then.
"""

from __future__ import annotations

import random

__all__ = ["stream_get", "stream_put"]


async def stream_put(ctx, port, payloads, *, rng: random.Random | None = None,
                     gap: float = 0.0):
    """Offer each payload on ``port`` (a stream consumer's ``i``), inserting idle cycles with
    probability ``gap`` before each beat; returns when the last beat has moved."""
    for payload in payloads:
        while rng is not None and rng.random() < gap:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, count: int, *, rng: random.Random | None = None,
                     stall: float = 0.0, timeout: int = 1_000_000):
    """Collect ``count`` payloads from ``port`` (a producer's ``o``), dropping ``ready`` with
    probability ``stall`` each cycle. Raises ``TimeoutError`` after ``timeout`` idle cycles."""
    out, idle = [], 0
    while len(out) < count:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and ready:
            out.append(payload)
            idle = 0
        else:
            idle += 1
            if idle > timeout:
                raise TimeoutError(f"no beat on the stream for {timeout} cycles "
                                   f"({len(out)} of {count} received)")
    ctx.set(port.ready, 0)
    return out
