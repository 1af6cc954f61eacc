"""A one-machine batch over the SDK's other input sources, against the sandbox: the lines of a
manifest (``ManifestSource``), with its dry run, resume and refusals as a folder batch has them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from evolink_async import EvolinkClient
from evolink_async.batch import Batch, BatchSpec, ManifestSource, plan_batch
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]


def _manifest(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "shared"
    write_png(root / "cats" / "tom.png", shade=10)
    write_png(root / "dog.png", shade=20)
    (root / "notes.png").write_text("not an image")
    lines = [
        {"key": "cats/tom", "model": "qwen-image-edit", "prompt": "make it autumn", "image_urls": ["cats/tom.png"]},
        {"key": "dog", "model": "qwen-image-edit", "prompt": "make it winter", "image_urls": ["dog.png"]},
        {"key": "gone", "model": "qwen-image-edit", "prompt": "make it spring", "image_urls": ["missing.png"]},
        {"key": "notes", "model": "qwen-image-edit", "prompt": "make it summer", "image_urls": ["notes.png"]},
    ]
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest, root


async def test_a_manifest_runs_on_one_machine_resumes_and_refuses_bad_lines_before_paying(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    manifest, root = _manifest(tmp_path)
    spec = BatchSpec(model="qwen-image-edit", input_dir=root, output_dir=tmp_path / "out", max_in_flight=2)
    plan = await plan_batch(spec, source=ManifestSource(manifest, root=root))
    assert (plan.inputs, plan.to_submit) == (4, 2)
    assert sorted(failed.key for failed in plan.invalid) == ["gone", "notes"]
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec, source=ManifestSource(manifest, root=root)).run()
    # What the dry run refused, the run refuses, before any upload or submit.
    assert sorted((failed.key, failed.code) for failed in summary.failed) == [("gone", "invalid_input"),
                                                                              ("notes", "invalid_input")]  # fmt: skip
    assert (summary.submitted, summary.downloaded) == (2, 2)
    assert evolink_sandbox.ledger.files_stored == 2
    assert len(evolink_sandbox.ledger.billed) == 2
    for name in ("cats/tom.result-0.png", "dog.result-0.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(b"\x89PNG"), name
    async with scaled_client(evolink_sandbox) as client:
        again = await Batch(client, spec, source=ManifestSource(manifest, root=root)).run()
    assert (again.done_before, again.submitted) == (2, 0)
    assert len(evolink_sandbox.ledger.billed) == 2  # resumed: nothing paid twice
