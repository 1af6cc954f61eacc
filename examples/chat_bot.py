"""A chat bot that renders Midjourney images and edits one message as they progress.

Chat services allow about one edit a second per chat: ``tasks.stream(task, progress_every=1.0,
min_gap=1.0)`` queries the task every second while the bot watches and sends at most one
progress event a second (always the latest state) and the end at once, so the bot never builds
a backlog of stale edits. Several users at once share the client's one scheduler.
When an image is done the bot offers its buttons; pressing "U2" upscales the second image.

The chat here is simulated (a list of messages printed to the terminal); swap ``Chat`` for your
chat library. Run it against the local sandbox, in one command (a sandbox starts in-process):

    python examples/chat_bot.py --sandbox

or against a Midjourney proxy with ``MJ_PROXY_BASE_URL`` and ``MJ_PROXY_API_KEY`` set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import attrs

import evolink_async as evolink


@attrs.define
class Message:
    chat: str
    text: str
    edits: int = 0


class Chat:
    """A stand-in for a chat service: messages that the bot sends and edits (at most 1/s each)."""

    def __init__(self, *, echo: bool) -> None:
        self.messages: list[Message] = []
        self._echo = echo
        self._last_edit: dict[int, float] = {}

    def _show(self, message: Message) -> None:
        if self._echo:
            # Outside text (a prompt, a server's message) is printed through repr's escaping.
            print(f"[{message.chat}] {message.text!r}"[:200], flush=True)

    async def send(self, chat: str, text: str) -> Message:
        message = Message(chat, text)
        self.messages.append(message)
        self._show(message)
        return message

    async def edit(self, message: Message, text: str) -> None:
        now = time.monotonic()
        last = self._last_edit.get(id(message))
        if last is not None and now - last < 0.95:
            raise RuntimeError("edited faster than once a second: the chat service would refuse it")
        self._last_edit[id(message)] = now
        message.text = text
        message.edits += 1
        self._show(message)


def bar(progress: int) -> str:
    filled = progress // 10
    return "#" * filled + "." * (10 - filled) + f" {progress} %"


async def render(
    mj: evolink.MidjourneyClient, chat: Chat, user: str, submit: Awaitable[evolink.Task], title: str
) -> evolink.Task | None:
    """Submit, then keep one message up to date until the task ends; the final task or None."""
    message = await chat.send(user, f"{title}: submitting")
    last_edit = -1.0

    async def show(text: str) -> None:
        # The stream spaces progress a second apart, but delivers the end at once: it may come
        # sooner than the chat's one edit a second allows, so the edit waits for its turn.
        nonlocal last_edit
        await asyncio.sleep(max(0.0, last_edit + 1.0 - time.monotonic()))
        await chat.edit(message, text)
        last_edit = time.monotonic()

    task = await submit
    # A query a second while somebody looks, one edit a second at most, the end at once.
    async with mj.tasks.stream(task, progress_every=1.0, min_gap=1.0, timeout=1800) as events:
        async for event in events:
            if event.kind is evolink.EventKind.PROGRESS:
                await show(f"{title}: {bar(event.progress)}")
            elif event.kind is evolink.EventKind.COMPLETED and event.task is not None:
                done = event.task
                # A button is a label ("U2") or an emoji alone (the reroll: 🔄).
                buttons = " ".join(b.label or b.emoji for b in (done.midjourney.buttons if done.midjourney else ()))
                await show(f"{title}: done {done.results[0] if done.results else ''} [{buttons}]")
                return done
            elif event.is_terminal:
                await show(f"{title}: {event.kind.value}: {event.error}")
    return None


async def conversation(mj: evolink.MidjourneyClient, chat: Chat, user: str, prompt: str) -> None:
    done = await render(mj, chat, user, mj.submit(evolink.Imagine(prompt=prompt)), f"imagine {prompt!r}")
    if done is not None:
        # The user presses U2: upscale the second image, in a message of its own.
        await render(mj, chat, user, mj.action(done, "U2"), "U2")


async def run(*, users: int, sandbox: bool, time_scale: float, echo: bool = True) -> Chat:
    chat = Chat(echo=echo)
    async with contextlib.AsyncExitStack() as stack:
        options: dict[str, Any] = {}
        if sandbox:
            from evolink_async.sandbox import MidjourneyOptions, Sandbox

            box = await stack.enter_async_context(
                Sandbox(time_scale=time_scale, midjourney=MidjourneyOptions(api_key="mj-example-secret"))
            )
            options = {"api_key": box.mj_api_key, "base_url": box.mj_base_url, "auth": "mj-api-secret"}
        mj = await stack.enter_async_context(evolink.MidjourneyClient(**options))
        async with asyncio.TaskGroup() as group:
            for i in range(users):
                group.create_task(conversation(mj, chat, f"user{i}", f"a lighthouse at dusk, style {i}"))
    return chat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox", action="store_true", help="start a local sandbox in-process")
    parser.add_argument("--users", type=int, default=3, help="simulated users chatting at once")
    parser.add_argument("--time-scale", type=float, default=0.2, help="sandbox clock (1.0: real time)")
    args = parser.parse_args()
    chat = asyncio.run(run(users=args.users, sandbox=args.sandbox, time_scale=args.time_scale))
    print(f"done: {len(chat.messages)} messages, {sum(m.edits for m in chat.messages)} edits", flush=True)


if __name__ == "__main__":
    main()
