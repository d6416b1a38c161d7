"""Put a :class:`~.jobs.Job`'s values into an API-format ComfyUI workflow.

An API workflow is ``{"<node id>": {"class_type": str, "inputs": {name: value or [src_id, out_index]}}}``.
Nodes are found by ``class_type`` and well-known input names (:data:`FILL_RULES`). Every matching node gets
the value (e.g. all samplers get the seed). A job field that is set but finds no node is an error, as is a
target input wired from another node (the value must be a widget value to be replaceable).

=============  ===============================================================  ==========================
job field      nodes (class_type.input)                                         value written
=============  ===============================================================  ==========================
prompt         CLIPTextEncode.text; CLIPTextEncodeFlux.clip_l + .t5xxl —         the prompt text
               only the *positive* encoder(s), see :func:`positive_text_nodes`
people         AnyPhotoLoadFaceRefs.photos                                      JSON ``[[name, ...], ...]``:
                                                                                uploaded photo names per person;
                                                                                its person_k image links are
                                                                                removed, and the LoadImage
                                                                                nodes that fed only them
people         AnyPhotoBuildLocationCanvas.placements                           placements JSON (placements.py):
                                                                                the boxes, with the job's units
seed           AnyPhotoIdentityIsolatedSampler.seed; KSampler.seed;             the seed
               KSamplerAdvanced.noise_seed; RandomNoise.noise_seed
steps          AnyPhotoIdentityIsolatedSampler.steps; KSampler.steps;           the step count
               KSamplerAdvanced.steps; BasicScheduler.steps
width, height  AnyPhotoBuildLocationCanvas; EmptyLatentImage;                   pixels
               EmptySD3LatentImage; ModelSamplingFlux (.width / .height)
=============  ===============================================================  ==========================
"""

from __future__ import annotations

import copy
import json

from ..placements import parse_placements
from .errors import JobError
from .jobs import Job

TEXT_ENCODERS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeFlux": ("clip_l", "t5xxl")}
FACE_REFS = {"AnyPhotoLoadFaceRefs": ("photos",)}
IMAGE_LOADERS = ("LoadImage",)
#: Size pixel boxes are checked against when the job sets none (BuildLocationCanvas's largest side).
MAX_SIDE = 4096
CANVAS = {"AnyPhotoBuildLocationCanvas": ("placements",)}
SAMPLER_SEED = {
    "AnyPhotoIdentityIsolatedSampler": ("seed",),
    "KSampler": ("seed",),
    "KSamplerAdvanced": ("noise_seed",),
    "RandomNoise": ("noise_seed",),
}
SAMPLER_STEPS = {
    "AnyPhotoIdentityIsolatedSampler": ("steps",),
    "KSampler": ("steps",),
    "KSamplerAdvanced": ("steps",),
    "BasicScheduler": ("steps",),
}
SIZE_NODES = ("AnyPhotoBuildLocationCanvas", "EmptyLatentImage", "EmptySD3LatentImage", "ModelSamplingFlux")

#: The plain rows of the table: job field → {class_type: input names}. prompt and people need more logic.
FILL_RULES = {
    "seed": SAMPLER_SEED,
    "steps": SAMPLER_STEPS,
    "width": {name: ("width",) for name in SIZE_NODES},
    "height": {name: ("height",) for name in SIZE_NODES},
}


def validate_api_workflow(workflow) -> dict:
    """Check that ``workflow`` is API format (not the editor's UI format) and return it."""
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise JobError("this is a UI-format workflow; in ComfyUI use Workflow > Export (API) and pass that file")
    if not isinstance(workflow, dict) or not workflow:
        raise JobError('an API workflow must be a non-empty JSON object {"<id>": {"class_type", "inputs"}}')
    for node_id, node in workflow.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs", {}), dict)
        ):
            raise JobError(f'workflow node {node_id!r} lacks "class_type"/"inputs"; is this an API-format workflow?')
    return workflow


def fill_workflow(workflow: dict, job: Job, photo_names: list[list[str]] | None = None) -> dict:
    """A copy of ``workflow`` with ``job``'s values written in (rules: module docstring).

    ``photo_names[k]`` are the server-side names (``subfolder/name``) of person ``k``'s uploaded photos;
    required when the job has people. Raises :class:`JobError` naming the field and the nodes looked for.
    """
    out = copy.deepcopy(validate_api_workflow(workflow))
    if job.prompt is not None:
        for node_id in positive_text_nodes(out):
            for name in TEXT_ENCODERS[out[node_id]["class_type"]]:
                _set(out, node_id, name, job.prompt)
    for field, rules in FILL_RULES.items():
        value = getattr(job, field)
        if value is not None:
            _fill_all(out, field, rules, value)
    if job.people:
        if photo_names is None or len(photo_names) != len(job.people):
            raise JobError("fill_workflow needs the uploaded photo names of every person (upload them first)")
        _fill_all(out, "people", FACE_REFS, json.dumps(photo_names))
        _drop_person_images(out)
        placements = job.placements_spec()
        try:
            # validates the boxes; pixel boxes must fit the job's size (the workflow's own size when it has none)
            parse_placements(placements, job.width or MAX_SIDE, job.height or MAX_SIDE)
        except ValueError as exc:
            raise JobError(f"people boxes: {exc}") from None
        _fill_all(out, "people", CANVAS, json.dumps(placements))
    return out


def _drop_person_images(workflow: dict) -> None:
    """The job's photos replace the images wired into AnyPhotoLoadFaceRefs' ``person_k`` inputs (e.g. the
    shipped workflows' LoadImage nodes): remove those links, then every LoadImage node nothing reads any more
    (ComfyUI would otherwise look for its placeholder file)."""
    for node in workflow.values():
        if node["class_type"] in FACE_REFS:
            inputs = node.setdefault("inputs", {})
            for name in [n for n, v in inputs.items() if n.startswith("person_") and _is_link(v)]:
                del inputs[name]
    used = {str(v[0]) for n in workflow.values() for v in n.get("inputs", {}).values() if _is_link(v)}
    for node_id in [i for i, n in workflow.items() if n["class_type"] in IMAGE_LOADERS and i not in used]:
        del workflow[node_id]


def positive_text_nodes(workflow: dict) -> list[str]:
    """Ids of the text encoders that make the positive prompt.

    The only text encoder if there is one; otherwise those upstream of any input named ``positive``
    (through conditioning nodes such as FluxGuidance). Raises :class:`JobError` if none qualifies.
    """
    encoders = [i for i, n in workflow.items() if n["class_type"] in TEXT_ENCODERS]
    if len(encoders) == 1:
        return encoders
    upstream = set()
    for node in workflow.values():
        link = node.get("inputs", {}).get("positive")
        if _is_link(link):
            upstream |= _ancestors(workflow, str(link[0]))
    found = [i for i in encoders if i in upstream]
    if not found:
        looked = ", ".join(TEXT_ENCODERS)
        why = "has none" if not encoders else f"has {len(encoders)} but none feeds a 'positive' input"
        raise JobError(f"the job sets a prompt, but the workflow {why} of the text encoders ({looked})")
    return found


def _fill_all(workflow: dict, field: str, rules: dict, value) -> None:
    targets = [(i, name) for i, n in workflow.items() if n["class_type"] in rules for name in rules[n["class_type"]]]
    if not targets:
        looked = ", ".join(f"{cls}.{name}" for cls, names in rules.items() for name in names)
        raise JobError(f"the job sets {field!r}, but the workflow has no node to take it (looked for {looked})")
    for node_id, name in targets:
        _set(workflow, node_id, name, value)


def _set(workflow: dict, node_id: str, name: str, value) -> None:
    inputs = workflow[node_id].setdefault("inputs", {})
    if _is_link(inputs.get(name)):
        src = inputs[name][0]
        raise JobError(
            f"node {node_id} ({workflow[node_id]['class_type']}) input {name!r} is wired from node {src}; "
            f"make it a widget value in the workflow so the client can set it"
        )
    inputs[name] = value


def _is_link(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _ancestors(workflow: dict, node_id: str) -> set[str]:
    """``node_id`` and every node it (transitively) takes inputs from."""
    seen, stack = set(), [node_id]
    while stack:
        current = stack.pop()
        if current in seen or current not in workflow:
            continue
        seen.add(current)
        stack.extend(str(v[0]) for v in workflow[current].get("inputs", {}).values() if _is_link(v))
    return seen
