"""The models the sandbox serves: those API.md A1-A3 name, as the real service serves a known list.

A name outside it is refused at submit with 400 ``model_unavailable`` (nothing is billed) unless
the sandbox runs with ``accept_any_model=True``, for a client testing a model not listed here.
Families the docs write with a wildcard (``doubao-seedream-4.0-*``, ``wan2.5-*``) match by prefix.
"""

from __future__ import annotations

__all__ = ["KNOWN_MODELS", "SUGGESTED_MODEL", "is_known_model"]

KNOWN_MODELS = frozenset(
    {
        # A1/A2: the seed's three, and the Midjourney family that takes an earlier task.
        "mj-v7-retexture", "mj-v7-remove-bg", "qwen-image-edit",
        "mj-v7", "mj-v7-upscale", "mj-v7-variation", "mj-v7-remix", "mj-v7-pan", "mj-v7-outpaint",
        "mj-v7-inpaint", "mj-v7-edit", "mj-v7-enhance",
        # A2: other models on the same endpoint.
        "qwen-image-edit-plus", "gemini-3-pro-image-preview", "gpt-image-1.5", "gpt-image-2", "z-image-turbo",
        # A3: the models of the documented answers.
        "gpt-4o-image", "gemini-3.1-flash-image-preview",
    }
)  # fmt: skip
_FAMILIES = ("doubao-seedream-4.0", "doubao-seedream-4.5", "doubao-seedream-5.0", "wan2.5-")

#: What a refusal suggests instead (its ``fallback_suggestion``).
SUGGESTED_MODEL = "qwen-image-edit"


def is_known_model(model: str) -> bool:
    return model in KNOWN_MODELS or model.startswith(_FAMILIES)
