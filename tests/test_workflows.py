"""The example workflows in workflows/ (UI and API format): structure, agreement with the nodes'
INPUT_TYPES, agreement between the formats, and the headless client's filling rules on them."""

import importlib.util
import json
import sys

import numpy as np
import pytest
from integration.anyphoto_pack import PACK_ROOT, load_pack
from PIL import Image

from anyphoto_core.headless import Job
from anyphoto_core.headless.fill import fill_workflow
from anyphoto_core.headless.jobs import Person
from anyphoto_core.placements import parse_placements

PACK = load_pack()
FOLDER = PACK_ROOT / "workflows"
STEMS = ("anyphoto_1_person", "anyphoto_2_people", "anyphoto_4_people")
PEOPLE = {"anyphoto_1_person": 1, "anyphoto_2_people": 2, "anyphoto_4_people": 4}
#: ComfyUI core node types the workflows may use (everything else must be a pack node).
CORE_TYPES = {
    "LoadImage",
    "UNETLoader",
    "DualCLIPLoader",
    "VAELoader",
    "CLIPTextEncode",
    "FluxGuidance",
    "EmptySD3LatentImage",
    "EmptyLatentImage",
    "VAEDecode",
    "SaveImage",
}


def _builder():
    spec = importlib.util.spec_from_file_location("build_workflows", FOLDER / "build_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


def _load(stem, api=False):
    return json.loads((FOLDER / ("api" if api else "") / f"{stem}.json").read_text(encoding="utf-8"))


def _spec(class_type):
    return BUILD.node_spec(class_type, PACK.NODE_CLASS_MAPPINGS)


def test_committed_files_are_the_builder_output():
    for stem, (ui, api, thumbnail) in BUILD.build_all(PACK.NODE_CLASS_MAPPINGS).items():
        assert (FOLDER / f"{stem}.json").read_text(encoding="utf-8") == BUILD.dump(ui), f"rerun build for {stem}"
        assert (FOLDER / "api" / f"{stem}.json").read_text(encoding="utf-8") == BUILD.dump(api)
        with Image.open(FOLDER / f"{stem}.jpg") as jpg:  # JPEG: equal up to compression
            assert jpg.format == "JPEG" and jpg.size == BUILD.THUMBNAIL_SIZE
            assert np.abs(np.asarray(jpg.convert("RGB"), float) - thumbnail).mean() < 2.0, f"rerun build for {stem}"
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == sorted(STEMS)
    assert sorted(p.stem for p in FOLDER.glob("*.jpg")) == sorted(STEMS)  # the templates browser's thumbnails


def test_thumbnail_shows_each_box_in_its_persons_colour():
    from anyphoto_core.app.previews import person_color

    boxes = [[0.1, 0.1, 0.3, 0.3], [0.6, 0.5, 0.9, 0.8]]
    thumb = BUILD.render_thumbnail(boxes)
    w, h = BUILD.THUMBNAIL_SIZE
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        centre = thumb[int((y1 + y2) / 2 * h), int((x1 + x2) / 2 * w)].astype(int)
        edge = thumb[int((y1 + y2) / 2 * h), int(x1 * w)].astype(int)
        assert np.abs(edge - person_color(k)).max() <= 1  # the outline
        assert np.argmax(centre) == np.argmax(person_color(k))  # the head, tinted in the same colour
    assert set(BUILD.CORE_NODES) <= CORE_TYPES


@pytest.mark.parametrize("stem", STEMS)
def test_node_types_are_pack_or_known_core(stem):
    types = {n["type"] for n in _load(stem)["nodes"]} | {n["class_type"] for n in _load(stem, api=True).values()}
    pack = set(PACK.NODE_CLASS_MAPPINGS)
    assert types <= pack | CORE_TYPES
    assert {
        "AnyPhotoApply",
        "AnyPhotoIdentityIsolatedSampler",
        "AnyPhotoLoadFaceRefs",
        "AnyPhotoArcFaceEmbed",
        "AnyPhotoBuildLocationCanvas",
        "AnyPhotoAdapterLoader",
        "AnyPhotoFaceAnalysisLoader",
    } <= types


@pytest.mark.parametrize("stem", STEMS)
def test_ui_links_are_consistent(stem):
    wf = _load(stem)
    assert wf["version"] == 0.4 and {"groups", "config", "extra"} <= set(wf)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and wf["last_node_id"] == max(nodes)
    links = {row[0]: row for row in wf["links"]}
    assert len(links) == len(wf["links"]) and wf["last_link_id"] == max(links)
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert kind == out["type"] == inp["type"]
        assert out["type"] == _spec(nodes[src]["type"]).outputs[src_slot][1]  # producer's RETURN_TYPES
    for node in wf["nodes"]:
        spec = _spec(node["type"])
        assert node["properties"] == {"Node name for S&R": node["type"]}
        connections = [i for i in spec.inputs if not i.is_widget]
        assert [(i["name"], i["type"]) for i in node["inputs"]] == [(c.name, c.type) for c in connections]
        for inp, decl in zip(node["inputs"], connections, strict=True):
            assert inp["link"] is not None or decl.optional, f"{node['type']}.{inp['name']} is required but unwired"
            if inp["link"] is not None:
                assert links[inp["link"]][3] == node["id"]
        for slot, out in enumerate(node["outputs"]):
            assert out["slot_index"] == slot and all(links[lid][1:3] == [node["id"], slot] for lid in out["links"])
    orders = {n["id"]: n["order"] for n in wf["nodes"]}
    assert all(orders[src] < orders[dst] for _, src, _, dst, _, _ in wf["links"])  # executable order


def _expected_widgets(node_type, inputs):
    """widgets_values written independently from INPUT_TYPES: widget inputs in declaration order,
    required then optional; seed widgets followed by the control_after_generate value."""
    values = []
    decl = PACK.NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in decl.get(section, {}).items():
            if isinstance(entry[0], list) or entry[0] in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                values.append(inputs[name])
                if entry[1].get("control_after_generate"):
                    values.append("fixed")
    return values


@pytest.mark.parametrize("stem", STEMS)
def test_ui_and_api_agree(stem):
    ui, api = _load(stem), _load(stem, api=True)
    assert sorted(api, key=int) == [str(n["id"]) for n in sorted(ui["nodes"], key=lambda n: n["id"])]
    links = {row[0]: row for row in ui["links"]}
    for node in ui["nodes"]:
        entry = api[str(node["id"])]
        assert entry["class_type"] == node["type"]
        wired = {i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]] for i in node["inputs"] if i["link"]}
        assert {k: v for k, v in entry["inputs"].items() if isinstance(v, list)} == wired
        if node["type"] in PACK.NODE_CLASS_MAPPINGS:
            assert node["widgets_values"] == _expected_widgets(node["type"], entry["inputs"])
        else:
            values = [v for v in entry["inputs"].values() if not isinstance(v, list)]
            upload = [BUILD.UPLOAD_WIDGET_VALUE] if node["type"] == "LoadImage" else []  # the upload button
            assert node["widgets_values"] == values + upload


def _check_value(where, spec, value):
    if spec.type == "COMBO":
        if spec.choices:  # None / empty: a file list that depends on the install
            assert value in spec.choices, f"{where}: {value!r} is not one of {spec.choices}"
        elif spec.options.get("image_upload"):
            assert isinstance(value, str) and value.endswith((".jpg", ".png")), where
        else:
            assert isinstance(value, str) and value.endswith(".safetensors"), where
        return
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}[spec.type]
    assert isinstance(value, expected) and (spec.type == "BOOLEAN" or not isinstance(value, bool)), where
    if "min" in spec.options:
        assert spec.options["min"] <= value <= spec.options["max"], f"{where}: {value} out of range"
    if spec.type == "INT" and spec.options.get("step", 1) > 1:
        assert value % spec.options["step"] == 0, f"{where}: {value} not a multiple of {spec.options['step']}"


@pytest.mark.parametrize("stem", STEMS)
def test_api_workflow_validates_against_input_types(stem):
    api = _load(stem, api=True)
    for node_id, entry in api.items():
        spec = _spec(entry["class_type"])
        names = {i.name for i in spec.inputs}
        assert set(entry["inputs"]) <= names, f"node {node_id}: unknown inputs {set(entry['inputs']) - names}"
        for inp in spec.inputs:
            where = f"node {node_id} {entry['class_type']}.{inp.name}"
            value = entry["inputs"].get(inp.name)
            if value is None:
                assert inp.optional, f"{where} is required"
            elif isinstance(value, list):
                src = api[value[0]]
                assert _spec(src["class_type"]).outputs[value[1]][1] == inp.type, where
            else:
                _check_value(where, inp, value)
    faces, canvas, sampler = (
        next(e for e in api.values() if e["class_type"] == c)
        for c in ("AnyPhotoLoadFaceRefs", "AnyPhotoBuildLocationCanvas", "AnyPhotoIdentityIsolatedSampler")
    )
    people = PEOPLE[stem]
    # photos are uploaded the ComfyUI way: one LoadImage per person feeds person_k; no typed file names
    assert faces["inputs"]["photos"] == ""
    for k in range(1, people + 1):
        assert api[faces["inputs"][f"person_{k}"][0]]["class_type"] == "LoadImage"
    assert f"person_{people + 1}" not in faces["inputs"]
    # one source of truth for the size: the sampler's latent is the canvas node's latent output
    canvas_id = next(i for i, e in api.items() if e is canvas)
    assert sampler["inputs"]["latent_image"] == [canvas_id, 3]
    assert not {e["class_type"] for e in api.values()} & {"EmptySD3LatentImage", "EmptyLatentImage"}
    boxes = [p.box for p in parse_placements(canvas["inputs"]["placements"], 1024, 1024)]
    assert len(boxes) == people
    for k, (x1, y1, x2, y2) in enumerate(boxes):  # sensible: inside the image, faces >= 128 px, no overlaps
        assert 0 <= x1 < x2 <= 1024 and 0 <= y1 < y2 <= 1024 and x2 - x1 >= 128
        for bx1, by1, bx2, by2 in boxes[k + 1 :]:
            assert x2 <= bx1 or bx2 <= x1 or y2 <= by1 or by2 <= y1


@pytest.mark.parametrize("stem", STEMS)
def test_headless_fill_rules_work_on_api_workflow(stem, tmp_path):
    api = _load(stem, api=True)
    n = PEOPLE[stem]
    people = tuple(Person((tmp_path / f"p{k}.jpg",), (0.1 + 0.2 * k, 0.2, 0.25 + 0.2 * k, 0.4)) for k in range(n))
    job = Job(prompt="a test prompt", people=people, units="fraction", seed=7, steps=12, width=768, height=512)
    names = [[f"anyphoto/p{k}.jpg"] for k in range(n)]
    filled = fill_workflow(api, job, names)
    by_type = {}
    for entry in filled.values():
        by_type.setdefault(entry["class_type"], []).append(entry["inputs"])
    positive = filled[filled["5"]["inputs"]["conditioning"][0]]
    assert positive["inputs"]["text"] == "a test prompt"
    assert [e["text"] for e in by_type["CLIPTextEncode"]].count("a test prompt") == 1  # negative untouched
    (sampler,) = by_type["AnyPhotoIdentityIsolatedSampler"]
    assert (sampler["seed"], sampler["steps"]) == (7, 12)
    for size_node in by_type["AnyPhotoBuildLocationCanvas"]:
        assert (size_node["width"], size_node["height"]) == (768, 512)
    (refs,) = by_type["AnyPhotoLoadFaceRefs"]
    assert PACK.faces.parse_photo_names(refs["photos"]) == names
    # the uploaded photos replace the LoadImage placeholders: links and loaders are gone
    assert not any(name.startswith("person_") for name in refs) and "LoadImage" not in by_type
    (canvas,) = by_type["AnyPhotoBuildLocationCanvas"]
    assert json.loads(canvas["placements"]) == {
        "version": 1,
        "units": "fraction",  # docs/headless.md rule
        "people": [{"box": list(p.box)} for p in people],
    }
    assert len(parse_placements(canvas["placements"], 768, 512)) == n
    assert api == _load(stem, api=True)  # the input workflow is not modified
