"""Build the example workflows in both ComfyUI formats from one graph description.

Run ``python workflows/build_workflows.py`` from the repository root; it rewrites
``workflows/anyphoto_{1_person,2_people,4_people}.json`` (UI / LiteGraph format, drag and drop into
ComfyUI), the same names under ``workflows/api/`` (API format, for ``anyphoto_core.headless``) and the
templates browser's thumbnails ``workflows/<name>.jpg`` (the frontend asks for ``<name>.jpg`` next to each
template): the output frame with each person's numbered box in the person's colour.

Input names, widget order and output types come from the pack's own ``INPUT_TYPES`` / ``RETURN_TYPES``
and, for the ComfyUI core nodes used, from :data:`CORE_NODES` (ComfyUI v0.3.64's declarations), so the
two formats cannot drift. ``widgets_values`` (UI format) lists the widget inputs in ``INPUT_TYPES``
order, required then optional, skipping connection-typed inputs; a seed widget is followed by its
``control_after_generate`` value.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
#: Value types the editor shows as widgets; every other type is a connection (a link slot).
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
SEED_CONTROL = "fixed"
#: What the frontend stores after the value of an ``image_upload`` combo (its upload button's value).
UPLOAD_WIDGET_VALUE = "image"
#: Output size of the example workflows (pixels) and the thumbnails' size.
OUTPUT_SIZE = (1024, 1024)
THUMBNAIL_SIZE = (512, 512)

#: ComfyUI core nodes the workflows use (v0.3.64): inputs as (name, type, choices or None, optional[, options]),
#: in INPUT_TYPES order; ``choices`` None = a file list that depends on the install (models, input photos).
CORE_NODES = {
    "LoadImage": {
        "inputs": [("image", "COMBO", None, False, {"image_upload": True})],
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    },
    "UNETLoader": {
        "inputs": [
            ("unet_name", "COMBO", None, False),
            ("weight_dtype", "COMBO", ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"], False),
        ],
        "outputs": [("MODEL", "MODEL")],
    },
    "DualCLIPLoader": {
        "inputs": [
            ("clip_name1", "COMBO", None, False),
            ("clip_name2", "COMBO", None, False),
            ("type", "COMBO", ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"], False),
            ("device", "COMBO", ["default", "cpu"], True),
        ],
        "outputs": [("CLIP", "CLIP")],
    },
    "VAELoader": {"inputs": [("vae_name", "COMBO", None, False)], "outputs": [("VAE", "VAE")]},
    "CLIPTextEncode": {
        "inputs": [("text", "STRING", None, False), ("clip", "CLIP", None, False)],
        "outputs": [("CONDITIONING", "CONDITIONING")],
    },
    "FluxGuidance": {
        "inputs": [("conditioning", "CONDITIONING", None, False), ("guidance", "FLOAT", None, False)],
        "outputs": [("CONDITIONING", "CONDITIONING")],
    },
    "VAEDecode": {
        "inputs": [("samples", "LATENT", None, False), ("vae", "VAE", None, False)],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "SaveImage": {
        "inputs": [("images", "IMAGE", None, False), ("filename_prefix", "STRING", None, False)],
        "outputs": [],
    },
}

PEOPLE = {  # file stem -> (face boxes as fractions of the 1024x1024 output, prompt)
    "anyphoto_1_person": (
        [[0.38, 0.18, 0.62, 0.42]],
        "a portrait photo of a person smiling in a sunny park, natural light, 35mm",
    ),
    "anyphoto_2_people": (
        [[0.17, 0.22, 0.39, 0.44], [0.61, 0.22, 0.83, 0.44]],
        "two friends standing side by side on a mountain trail at golden hour, photo",
    ),
    "anyphoto_4_people": (
        [[0.04, 0.3, 0.2, 0.46], [0.29, 0.26, 0.45, 0.42], [0.54, 0.26, 0.7, 0.42], [0.79, 0.3, 0.95, 0.46]],
        "four colleagues posing together in a bright modern office, group photo",
    ),
}


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # a connection type, or one of WIDGET_TYPES
    choices: list | None
    optional: bool
    seed: bool  # the editor adds a control_after_generate widget after it
    options: dict = field(default_factory=dict)

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES


@dataclass(frozen=True)
class NodeSpec:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[tuple[str, str], ...]  # (name, type) per slot


def pack_node_spec(cls) -> NodeSpec:
    """The :class:`NodeSpec` of a V1 node class from its INPUT_TYPES / RETURN_TYPES / RETURN_NAMES."""
    decl = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for name, entry in decl.get(section, {}).items():
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {})
            is_combo = isinstance(kind, (list, tuple))
            inputs.append(
                InputSpec(
                    name,
                    "COMBO" if is_combo else kind,
                    list(kind) if is_combo else None,
                    section == "optional",
                    bool(options.get("control_after_generate")),
                    options,
                )
            )
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return NodeSpec(tuple(inputs), tuple(zip(names, cls.RETURN_TYPES, strict=True)))


def core_node_spec(class_type: str) -> NodeSpec:
    entry = CORE_NODES[class_type]
    inputs = tuple(
        InputSpec(n, t, c, o, n in ("seed", "noise_seed"), rest[0] if rest else {})
        for n, t, c, o, *rest in entry["inputs"]
    )
    return NodeSpec(inputs, tuple(entry["outputs"]))


def node_spec(class_type: str, pack_nodes: dict) -> NodeSpec:
    """Spec of a pack node (from ``pack_nodes``, i.e. NODE_CLASS_MAPPINGS) or of a core node (CORE_NODES)."""
    if class_type in pack_nodes:
        return pack_node_spec(pack_nodes[class_type])
    if class_type in CORE_NODES:
        return core_node_spec(class_type)
    raise KeyError(f"{class_type} is neither a pack node nor listed in CORE_NODES")


#: Sizes the real frontend (1.27) gives nodes whose widgets need more than the default room.
NODE_SIZES = {"AnyPhotoBuildLocationCanvas": (340, 500), "LoadImage": (320, 360)}


@dataclass
class GraphNode:
    """One node: ``widgets`` name -> value, ``links`` input name -> (source node id, output slot)."""

    id: int
    class_type: str
    pos: tuple[int, int]
    widgets: dict
    links: dict = field(default_factory=dict)
    title: str | None = None


def anyphoto_graph(boxes: list, prompt: str) -> list[GraphNode]:
    """The AnyPhoto FLUX.1-dev graph for ``len(boxes)`` people (face boxes as fractions): one LoadImage per
    person feeds AnyPhoto Load Face Refs; the canvas node's latent output is the sampler's latent, so the
    size is set in one place."""
    n = len(boxes)
    placements = json.dumps({"version": 1, "units": "fraction", "people": [{"box": b} for b in boxes]})
    width, height = OUTPUT_SIZE
    photos = [
        GraphNode(17 + k, "LoadImage", (-360, 360 * k), {"image": f"person_{k + 1}.jpg"}, title=f"Person {k + 1} photo")
        for k in range(n)
    ]
    return [
        GraphNode(1, "UNETLoader", (0, 0), {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}),
        GraphNode(
            2,
            "DualCLIPLoader",
            (0, 200),
            {
                "clip_name1": "clip_l.safetensors",
                "clip_name2": "t5xxl_fp16.safetensors",
                "type": "flux",
                "device": "default",
            },
        ),
        GraphNode(3, "VAELoader", (0, 400), {"vae_name": "ae.safetensors"}),
        GraphNode(4, "CLIPTextEncode", (380, 0), {"text": prompt}, {"clip": (2, 0)}, "Positive prompt"),
        GraphNode(5, "FluxGuidance", (760, 0), {"guidance": 3.5}, {"conditioning": (4, 0)}),
        GraphNode(6, "CLIPTextEncode", (380, 200), {"text": ""}, {"clip": (2, 0)}, "Negative prompt (unused at cfg 1)"),
        GraphNode(7, "AnyPhotoFaceAnalysisLoader", (0, 600), {"model_pack": "antelopev2", "provider": "auto"}),
        GraphNode(8, "AnyPhotoAdapterLoader", (0, 800), {"adapter_name": "anyphoto_adapter.safetensors"}),
        *photos,
        GraphNode(
            9,
            "AnyPhotoLoadFaceRefs",
            (380, 400),
            {"choice_rule": "largest", "face_index": "", "on_no_face": "error", "photos": ""},
            {"face_analysis": (7, 0), **{f"person_{k + 1}": (p.id, 0) for k, p in enumerate(photos)}},
        ),
        GraphNode(10, "AnyPhotoArcFaceEmbed", (760, 200), {}, {"face_refs": (9, 0)}),
        GraphNode(
            11,
            "AnyPhotoBuildLocationCanvas",
            (760, 400),
            {"width": width, "height": height, "placements": placements, "batch_size": 1},
            {"face_refs": (9, 0)},
        ),
        GraphNode(
            12,
            "AnyPhotoApply",
            (1140, 0),
            {
                "identity_weight": 1.0,
                "person_weights": "",
                "lora_strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
            {"model": (1, 0), "adapter": (8, 0), "vae": (3, 0), "canvas": (11, 0), "embeds": (10, 0)},
        ),
        GraphNode(
            14,
            "AnyPhotoIdentityIsolatedSampler",
            (1520, 0),
            {
                "seed": 42,
                "steps": 28,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "denoise": 1.0,
                "identity_guidance": 1.0,
                "isolation": True,
                "identity_null": "trained null",
            },
            {"model": (12, 0), "positive": (5, 0), "negative": (6, 0), "latent_image": (11, 3)},
        ),
        GraphNode(15, "VAEDecode", (1520, 380), {}, {"samples": (14, 0), "vae": (3, 0)}),
        GraphNode(16, "SaveImage", (1520, 560), {"filename_prefix": f"AnyPhoto_{n}p"}, {"images": (15, 0)}),
    ]


def render_thumbnail(boxes: list) -> np.ndarray:
    """The templates browser's picture of a workflow, ``(h, w, 3)`` uint8 of :data:`THUMBNAIL_SIZE`: the output
    frame with, per person k, a figure (head in box k, given as fractions, shoulders below it) in person k's
    colour, the box outlined and numbered."""
    from anyphoto_core.app.previews import person_color

    width, height = THUMBNAIL_SIZE
    image = Image.new("RGB", (width, height), (246, 246, 246))
    draw = ImageDraw.Draw(image, "RGBA")
    line = max(2, width // 128)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        x1, y1, x2, y2 = x1 * width, y1 * height, x2 * width, y2 * height
        w, h = x2 - x1, y2 - y1
        color = person_color(k)
        shoulders = [x1 - 0.3 * w, y2 + 0.1 * h, x2 + 0.3 * w, y2 + 2.1 * h]
        draw.chord(shoulders, 180, 360, fill=(*color, 150))
        draw.ellipse([x1 + 0.15 * w, y1 + 0.05 * h, x2 - 0.15 * w, y2 - 0.05 * h], fill=(*color, 220))  # head
        draw.rectangle([x1, y1, x2, y2], outline=color, width=line)
        draw.text((x1 + 2 * line, y1 + line), str(k + 1), fill=(0, 0, 0))
    return np.asarray(image)


def to_api(graph: list[GraphNode], pack_nodes: dict) -> dict:
    """API format: ``{"<id>": {"class_type", "inputs": {name: value or [src_id, slot]}, "_meta"}}``."""
    out = {}
    for node in graph:
        inputs = {}
        for spec in node_spec(node.class_type, pack_nodes).inputs:
            if spec.name in node.links:
                src, slot = node.links[spec.name]
                inputs[spec.name] = [str(src), slot]
            elif spec.is_widget and spec.name in node.widgets:
                inputs[spec.name] = node.widgets[spec.name]
        out[str(node.id)] = {
            "class_type": node.class_type,
            "inputs": inputs,
            "_meta": {"title": node.title or node.class_type},
        }
    return out


def widgets_values(node: GraphNode, spec: NodeSpec) -> list:
    """The node's widget values in INPUT_TYPES order (seed widgets followed by their control value)."""
    values = []
    for inp in spec.inputs:
        if not inp.is_widget:
            continue
        if inp.name not in node.widgets:
            raise ValueError(f"node {node.id} ({node.class_type}) has no value for widget {inp.name!r}")
        values.append(node.widgets[inp.name])
        if inp.seed:
            values.append(SEED_CONTROL)
        if inp.options.get("image_upload"):
            values.append(UPLOAD_WIDGET_VALUE)
    return values


def to_ui(graph: list[GraphNode], pack_nodes: dict) -> dict:
    """UI (LiteGraph) format, version 0.4: nodes with input/output slots, links, widgets_values."""
    specs = {node.id: node_spec(node.class_type, pack_nodes) for node in graph}
    links, out_links, nodes = [], {}, []
    for order, node in enumerate(graph):
        spec = specs[node.id]
        inputs = []
        for inp in (i for i in spec.inputs if not i.is_widget):
            link_id = None
            if inp.name in node.links:
                src, slot = node.links[inp.name]
                link_id = len(links) + 1
                links.append([link_id, src, slot, node.id, len(inputs), specs[src].outputs[slot][1]])
                out_links.setdefault((src, slot), []).append(link_id)
            inputs.append({"name": inp.name, "type": inp.type, "link": link_id})
        size = list(NODE_SIZES.get(node.class_type, (340, 130)))
        entry = {
            "id": node.id,
            "type": node.class_type,
            "pos": list(node.pos),
            "size": size,
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": [],
            "properties": {"Node name for S&R": node.class_type},
            "widgets_values": widgets_values(node, spec),
        }
        if node.title:
            entry["title"] = node.title
        nodes.append(entry)
    for node, entry in zip(graph, nodes, strict=True):
        entry["outputs"] = [
            {"name": name, "type": kind, "links": out_links.get((node.id, slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(specs[node.id].outputs)
        ]
    return {
        "last_node_id": max(n.id for n in graph),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def build_all(pack_nodes: dict) -> dict[str, tuple[dict, dict, np.ndarray]]:
    """``{stem: (ui_workflow, api_workflow, thumbnail)}`` for every entry of :data:`PEOPLE`."""
    out = {}
    for stem, (boxes, prompt) in PEOPLE.items():
        graph = anyphoto_graph(boxes, prompt)
        out[stem] = (to_ui(graph, pack_nodes), to_api(graph, pack_nodes), render_thumbnail(boxes))
    return out


def dump(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    from tests.integration.anyphoto_pack import load_pack

    (HERE / "api").mkdir(exist_ok=True)
    for stem, (ui, api, thumbnail) in build_all(load_pack().NODE_CLASS_MAPPINGS).items():
        (HERE / f"{stem}.json").write_text(dump(ui), encoding="utf-8")
        (HERE / "api" / f"{stem}.json").write_text(dump(api), encoding="utf-8")
        Image.fromarray(thumbnail).save(HERE / f"{stem}.jpg", quality=90)
        print(f"wrote workflows/{stem}.json, workflows/api/{stem}.json and workflows/{stem}.jpg")


if __name__ == "__main__":
    main()
