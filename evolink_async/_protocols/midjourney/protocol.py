"""A Midjourney proxy as a :class:`~evolink_async._protocols.task_api.TaskProtocol`: what
``MidjourneyClient`` is built from."""

from __future__ import annotations

from ..._core.transport import Transport
from ..._models.task import Task
from ..task_api import CallbackURLs
from .api import MidjourneyAPI, normalize_prefix
from .requests import MidjourneyRequest
from .tasks import state_of, structure_mj_task

__all__ = ["MidjourneyProtocol"]


class MidjourneyProtocol:
    """A novicezk/trueai midjourney-proxy (or a gateway speaking it) under ``path_prefix``."""

    name = "midjourney_proxy"
    reports_cost = False  # a proxy's answers carry no cost
    uploads_images = False  # images travel inline (base64) in the submit: nothing stored, nothing to delete
    default_max_in_flight = 8  # a Discord account runs a few jobs at once; more only queue (code 22)

    def __init__(self, *, path_prefix: str = "/mj") -> None:
        self.path_prefix = normalize_prefix(path_prefix)

    def connect(self, transport: Transport, callbacks: CallbackURLs | None) -> MidjourneyAPI:
        return MidjourneyAPI(transport, path_prefix=self.path_prefix, callbacks=callbacks)

    def parse_task(self, body: object) -> Task:
        return structure_mj_task(body)

    def callback_marker(self, task: Task) -> str | None:
        return state_of(task)  # the submit's ``state``: a hook refuses bodies with another's

    def model_of(self, request: MidjourneyRequest) -> str:
        return "midjourney"
