"""BuildLocationCanvas: where each person goes, as one location canvas per identity."""

from __future__ import annotations

import os
import uuid

from PIL import Image

from anyphoto_core.canvas import FacePatch
from anyphoto_core.conditioning import build_canvases
from anyphoto_core.faces import placements_from_layout_photo
from anyphoto_core.notices import Notice
from anyphoto_core.placements import parse_placements, placement_notices

from . import host
from .feedback import with_warnings
from .types import CANVAS, FACE_ANALYSIS, FACE_REFS, CanvasSet

THUMBNAIL_SIZE = 128


def face_patch(identity) -> FacePatch:
    """The person's primary aligned crop as the canvas patch (crop, its alpha, template landmarks)."""
    ref = identity.primary
    return FacePatch(ref.crop, ref.crop_alpha, ref.crop_landmarks)


def build_canvas_set(
    face_refs, width: int, height: int, placements: str, layout=None, detector=None
) -> tuple[CanvasSet, list[Notice]]:
    """Canvases for ``face_refs`` at ``width x height``: from the layout photo's faces if given, else
    from the placements JSON; and the warnings for the user (layout faces dropped by the crop, boxes
    without a person, overlapping boxes). Raises ``ValueError`` for sizes that are not multiples of 16."""
    if width % 16 or height % 16:
        raise ValueError(f"width and height must be multiples of 16 (FLUX tokens are 16 px), got {width}x{height}")
    if not face_refs:
        raise ValueError("face_refs is empty: no person to place")
    notices = []
    if layout is not None:
        if detector is None:
            raise ValueError("a layout image needs the face_analysis input to detect its faces")
        found = placements_from_layout_photo(layout, detector, width, height, name="layout image")
        targets = found.placements
        notices += found.notices
    else:
        targets = parse_placements(placements, width, height)
    canvases = build_canvases([face_patch(i) for i in face_refs], targets, (width, height))
    notices += placement_notices(targets, len(face_refs))
    return CanvasSet(tuple(canvases), tuple(targets[: len(canvases)]), (width, height)), notices


class AnyPhotoBuildLocationCanvas:
    DESCRIPTION = (
        "Pastes each person's aligned face at their box (placements from the editor, JSON, or the faces "
        "of a layout image) on a white canvas of the output size."
    )

    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 256, "max": 4096, "step": 16}
        return {
            "required": {
                "face_refs": (FACE_REFS, {"tooltip": "from AnyPhoto Load Face Refs; person k goes to box k"}),
                "width": (
                    "INT",
                    {
                        "default": 1024,
                        **size,
                        "tooltip": "output width in pixels (multiple of 16); the latent output has this size",
                    },
                ),
                "height": ("INT", {"default": 1024, **size, "tooltip": "output height in pixels (multiple of 16)"}),
                "placements": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": 'face boxes per person, edited on the canvas; JSON {"version":1,"units":"fraction",'
                        '"people":[{"box":[x1,y1,x2,y2]}]}',
                    },
                ),
                "batch_size": (
                    "INT",
                    {"default": 1, "min": 1, "max": 4096, "tooltip": "images per run (the latent's batch size)"},
                ),
            },
            "optional": {
                "layout_image": (
                    "IMAGE",
                    {"tooltip": "a photo whose faces (left to right) give the placements; overrides the boxes"},
                ),
                "face_analysis": (FACE_ANALYSIS, {"tooltip": "face detector for layout_image"}),
            },
        }

    RETURN_TYPES = (CANVAS, "IMAGE", "MASK", "LATENT")
    RETURN_NAMES = ("canvas", "canvas_images", "canvas_masks", "latent")
    OUTPUT_TOOLTIPS = (
        "the people's location canvases, for AnyPhoto Apply",
        "one canvas image per person",
        "one face mask per person",
        "empty FLUX latent of the canvas size: connect it to the sampler so the size is set in one place",
    )
    FUNCTION = "build"
    CATEGORY = "AnyPhoto/layout"

    def build(self, face_refs, width, height, placements, batch_size=1, layout_image=None, face_analysis=None):
        layout = host.image_to_arrays(layout_image[:1])[0] if layout_image is not None else None
        detector = face_analysis.detector if face_analysis is not None else None
        canvas_set, notices = build_canvas_set(face_refs, width, height, placements, layout, detector)
        images = host.arrays_to_image([c.image for c in canvas_set.canvases])
        masks = host.arrays_to_image([c.mask[..., None].repeat(3, -1) * 255 for c in canvas_set.canvases])[..., 0]
        thumbs = save_thumbnails(face_refs, host.temp_directory())
        latent = {"samples": host.empty_latent(width, height, batch_size)}
        return with_warnings((canvas_set, images, masks, latent), notices, ui={"anyphoto_faces": thumbs})


def save_thumbnails(face_refs, folder: str) -> list[dict]:
    """One PNG face thumbnail per person in ``folder`` (ComfyUI's temp dir), in person order, as
    ``{"filename", "subfolder", "type": "temp"}`` entries for the location editor."""
    from anyphoto_core.app.previews import resize_square  # app code, imported when thumbnails are written

    os.makedirs(folder, exist_ok=True)
    run = uuid.uuid4().hex[:10]
    out = []
    for k, ident in enumerate(face_refs):
        name = f"anyphoto_face_{run}_{k + 1}.png"
        Image.fromarray(resize_square(ident.primary.crop, THUMBNAIL_SIZE)).save(os.path.join(folder, name))
        out.append({"filename": name, "subfolder": "", "type": "temp"})
    return out
