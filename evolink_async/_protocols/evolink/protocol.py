"""Evolink as a :class:`~evolink_async._protocols.task_api.TaskProtocol`: what ``EvolinkClient`` is built from."""

from __future__ import annotations

from ..._core.transport import Transport
from ..._models.converter import structure_task
from ..._models.requests import Request, is_request
from ..._models.task import Task
from ..task_api import CallbackURLs
from .api import EvolinkAPI
from .files import Files

__all__ = ["EvolinkProtocol"]


class EvolinkProtocol:
    """Evolink's task API (``/v1/images/generations``, ``/v1/tasks/{id}``) and its Files API."""

    name = "evolink"
    reports_cost = True  # every submit answers ``usage.credits_reserved``
    uploads_images = True  # local images go through the Files API (a quota, deleted after their task)
    default_max_in_flight = 16

    def connect(self, transport: Transport, callbacks: CallbackURLs | None) -> EvolinkAPI:
        return EvolinkAPI(transport, Files(transport), callbacks=callbacks)

    def parse_task(self, body: object) -> Task:
        return structure_task(body)

    def callback_marker(self, task: Task) -> str | None:
        return None  # a callback URL names its submit; the task carries nothing of it

    def model_of(self, request: Request) -> str:
        # Total: a request of the wrong type is ``submit``'s to refuse, with a ValidationError.
        return request.model if is_request(request) else type(request).__name__
