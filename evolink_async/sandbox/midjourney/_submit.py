"""The MJ submit endpoints: imagine, blend, describe, shorten, change, simple-change, action, modal.

Each answers the submit envelope ``{"code", "description", "properties", "result"}`` (HTTP 200
unless trueai answers otherwise: an unknown target of ``action``/``modal`` is HTTP 404 code 3).
Validation messages are the proxies' own (mj_protocol.md §1-2).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .._http import json_response
from ._buttons import GRID_ACTIONS, parse_custom_id
from ._ledger import MjSubmission
from ._state import MjState
from ._tasks import DISCORD_INSTANCE_ID, MjTask, QueueFull

__all__ = ["MjSubmit", "envelope"]

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+$")
_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
_CHANGE = {"UPSCALE": "upsample", "VARIATION": "variation", "REROLL": "reroll"}
_GONE = "关联任务不存在或已失效"
_BAD_STATE = "关联任务状态错误"
_QUEUE_FULL = {23: "队列已满\uff0c请稍后尝试", 9: "提交失败\uff0c队列已满\uff0c请稍后重试"}


def envelope(
    code: int,
    description: str,
    result: str | None = None,
    properties: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    body = {"code": code, "description": description, "properties": properties or {}, "result": result}
    return json_response(body, status=status)


class _Refused(Exception):
    def __init__(
        self, code: int, description: str, *, status: int = 200, properties: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.response = envelope(code, description, properties=properties, status=status)


def _state(task: MjTask) -> str | None:
    return task.state if isinstance(task.state, str) else None


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


class MjSubmit:
    def __init__(self, mj: MjState, secret: str) -> None:
        self.mj = mj
        self.book = mj.book
        self.options = mj.options
        self.secret = secret

    async def handle(self, endpoint: str, body: dict[str, Any]) -> web.Response:
        handler = getattr(self, f"_{endpoint.replace('-', '_')}")
        try:
            response: web.Response = handler(body)
        except _Refused as refused:
            self.mj.ledger.mj_refused[refused.code] += 1
            return refused.response
        return response

    # -- creating a task ---------------------------------------------------------------------

    def _queue(self, task: MjTask, endpoint: str, now: float, *, new: bool = True) -> web.Response:
        try:
            ahead = self.book.check_room(now)
        except QueueFull:
            code = self.options.queue_full_code
            raise _Refused(code, _QUEUE_FULL.get(code, "队列已满")) from None
        if new:
            self.book.add(task)
        self.book.plan(task, now)
        self.mj.hooks.schedule(task)
        code = 1 if ahead is None else 22
        if new:
            self.mj.ledger.record_mj_task(
                MjSubmission(
                    task_id=task.id,
                    action=task.action,
                    endpoint=endpoint,
                    code=code,
                    credits=self.options.cost,
                    state=_state(task),
                )
            )
        self.mj.ledger.record_unfinished(f"mj:{self.secret}", self.book.unfinished(now))
        properties = {"discordInstanceId": DISCORD_INSTANCE_ID, "discordChannelId": DISCORD_INSTANCE_ID}
        if ahead is None:
            return envelope(1, "提交成功", task.id, properties)
        return envelope(22, f"排队中\uff0c前面还有{ahead}个任务", task.id, {**properties, "numberOfQueues": ahead})

    def _modal_task(self, task: MjTask, endpoint: str) -> web.Response:
        self.book.add(task)
        entry = MjSubmission(
            task_id=task.id, action=task.action, endpoint=endpoint, code=21, credits=self.options.cost,
            state=_state(task),
        )  # fmt: skip
        self.mj.ledger.record_mj_task(entry)
        properties = {"finalPrompt": task.final_prompt or task.prompt, "remix": True}
        return envelope(21, "Waiting for window confirm", task.id, properties)

    def _banned(self, prompt: str) -> bool:
        word = self.options.banned_word(prompt)
        if word is not None and self.options.banned_check == "submit":
            raise _Refused(24, "可能包含敏感词", properties={"promptEn": prompt, "bannedWord": word})
        return word is not None

    # -- endpoints ---------------------------------------------------------------------------

    def _imagine(self, body: dict[str, Any]) -> web.Response:
        prompt = _text(body, "prompt")
        if not prompt:
            raise _Refused(4, "prompt不能为空")
        images = body.get("base64Array") or []
        if not isinstance(images, list) or not all(isinstance(i, str) and _DATA_URL.match(i) for i in images):
            raise _Refused(4, "base64格式错误")
        banned = self._banned(prompt)
        now = self.mj.clock()
        task = self.book.new_task(
            action="IMAGINE", prompt=prompt, description=f"/imagine {prompt}", body=body, now=now, banned=banned
        )
        return self._queue(task, "imagine", now)

    def _blend(self, body: dict[str, Any]) -> web.Response:
        images = body.get("base64Array")
        if (
            not isinstance(images, list)
            or not 2 <= len(images) <= 5
            or not all(isinstance(i, str) and _DATA_URL.match(i) for i in images)
        ):
            raise _Refused(4, "base64List参数错误")
        dimensions = body.get("dimensions", "SQUARE")
        if dimensions not in _DIMENSIONS:
            raise _Refused(4, "dimensions参数错误")
        now = self.mj.clock()
        ratio = {"PORTRAIT": "2:3", "SQUARE": "1:1", "LANDSCAPE": "3:2"}[dimensions]
        task = self.book.new_task(
            action="BLEND", prompt=f"--ar {ratio}", description=f"/blend {{id}} {len(images)}", body=body, now=now
        )
        return self._queue(task, "blend", now)

    def _describe(self, body: dict[str, Any]) -> web.Response:
        image = _text(body, "base64") or _text(body, "link")
        if not image:
            raise _Refused(4, "base64不能为空")
        now = self.mj.clock()
        prompts = "\n\n".join(f"{n}\ufe0f\u20e3 a sandbox picture, study {n} --ar 1:1" for n in range(1, 5))
        task = self.book.new_task(
            action="DESCRIBE", prompt="", description="/describe {id}", body=body, now=now, final_prompt=prompts
        )
        return self._queue(task, "describe", now)

    def _shorten(self, body: dict[str, Any]) -> web.Response:
        prompt = _text(body, "prompt")
        if not prompt:
            raise _Refused(4, "prompt不能为空")
        now = self.mj.clock()
        words = prompt.split()
        shorter = "\n".join(f"{n}\ufe0f\u20e3 {' '.join(words[: max(1, len(words) - n)])}" for n in range(1, 6))
        task = self.book.new_task(
            action="SHORTEN", prompt=prompt, description=f"/shorten {prompt}", body=body, now=now, final_prompt=shorter
        )
        return self._queue(task, "shorten", now)

    def _change(self, body: dict[str, Any]) -> web.Response:
        task_id, action = _text(body, "taskId"), _text(body, "action").upper()
        if not task_id:
            raise _Refused(4, "taskId不能为空")
        if action not in _CHANGE:
            raise _Refused(4, "action参数错误")
        index = body.get("index") if action != "REROLL" else 0
        return self._change_of(task_id, action, index if isinstance(index, int) else 1, body, "change")

    def _simple_change(self, body: dict[str, Any]) -> web.Response:
        parts = _text(body, "content").split()
        match = re.fullmatch(r"([UV])([1-4])|R", parts[1].upper()) if len(parts) == 2 else None
        if match is None:
            raise _Refused(4, "content参数错误")
        letter = match.group(1) or "R"
        action = {"U": "UPSCALE", "V": "VARIATION", "R": "REROLL"}[letter]
        return self._change_of(parts[0], action, int(match.group(2) or 0), body, "simple-change")

    def _change_of(self, task_id: str, action: str, index: int, body: dict[str, Any], endpoint: str) -> web.Response:
        parent = self._parent(task_id, http_404=False)
        if parent.action not in ("IMAGINE", "VARIATION", "REROLL", "BLEND"):
            raise _Refused(4, "关联任务不允许执行变化")
        suffix = "::SOLO" if action == "REROLL" else ""
        custom_id = f"MJ::JOB::{_CHANGE[action]}::{index}::{parent.job}{suffix}"
        return self._child(parent, custom_id, body, endpoint)

    def _action(self, body: dict[str, Any]) -> web.Response:
        task_id, custom_id = _text(body, "taskId"), _text(body, "customId")
        if not task_id or not custom_id:
            raise _Refused(4, "参数错误")
        return self._child(self._parent(task_id, http_404=True), custom_id, body, "action")

    def _modal(self, body: dict[str, Any]) -> web.Response:
        task = self.book.get(_text(body, "taskId"))
        if task is None:
            raise _Refused(3, _GONE, status=404)
        if not task.modal:
            raise _Refused(4, _BAD_STATE)
        prompt = _text(body, "prompt") or task.final_prompt or task.prompt
        if not prompt:
            raise _Refused(4, "prompt不能为空")
        task.prompt, task.final_prompt = prompt, prompt
        task.banned = self._banned(prompt)
        return self._queue(task, "modal", self.mj.clock(), new=False)

    # -- actions on a finished task ----------------------------------------------------------

    def _parent(self, task_id: str, *, http_404: bool) -> MjTask:
        parent = self.book.get(task_id)
        if parent is None:
            raise _Refused(3, _GONE, status=404 if http_404 else 200)
        event = parent.event_at(self.mj.clock())
        if event is None or event.status != "SUCCESS":
            raise _Refused(4, _BAD_STATE)
        return parent

    def _child(self, parent: MjTask, custom_id: str, body: dict[str, Any], endpoint: str) -> web.Response:
        target = parse_custom_id(custom_id, parent.action)
        if target is None:
            raise _Refused(4, "未知的 Action 类型")
        now = self.mj.clock()
        prompt = parent.prompt
        if parent.action in ("DESCRIBE", "SHORTEN") and target.action == "IMAGINE":
            lines = [line for line in (parent.final_prompt or "").splitlines() if line.strip()]
            pick = lines[min(max(target.index, 1), len(lines)) - 1] if lines else ""
            prompt = pick.split(" ", 1)[-1].strip()
        tile_of = parent.tile_of
        if target.action == "UPSCALE" and parent.action in GRID_ACTIONS:
            tile_of = (parent.id, parent.prompt, min(max(target.index, 1), 4) - 1)
        elif target.action == "UPSCALE_HD" and tile_of is None:
            tile_of = (parent.id, parent.prompt, 0)
        label = {"UPSCALE": f"U{target.index}", "VARIATION": f"V{target.index}"}.get(target.action, "R")
        description = f"/up {parent.id} {label}" if endpoint != "action" else f"/{target.action.lower()} {parent.id}"
        task = self.book.new_task(
            action=target.action, prompt=prompt, description=description, body=body, now=now,
            parent_id=parent.id, index=target.index, tile_of=tile_of if target.action.startswith("UPSCALE") else None,
            final_prompt=prompt,
        )  # fmt: skip
        remix = body.get("enableRemix") is True and target.remixable
        if custom_id.startswith(self.options.modal_prefixes) or remix:
            return self._modal_task(task, endpoint)
        return self._queue(task, endpoint, now)
