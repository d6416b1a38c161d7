"""Evaluate: is each person in the generated image, like their reference, and inside their box?"""

from __future__ import annotations

import json

import numpy as np

from anyphoto_core.faces.alignment import arcface_crop

from . import host
from .types import CANVAS, FACE_ANALYSIS, FACE_REFS


class AnyPhotoEvaluate:
    DESCRIPTION = (
        "Scores generated images: per person the ArcFace similarity to the reference, the IoU of the "
        "credited face with the person's box and whether it is in the box, plus missing / duplicate "
        "faces; draws target boxes (dashed) and detected faces (solid) numbered per person."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "generated image(s), e.g. from VAEDecode"}),
                "face_refs": (FACE_REFS, {"tooltip": "the Load Face Refs output of the generation (person order)"}),
                "canvas": (CANVAS, {"tooltip": "the Build Location Canvas output of the generation: its boxes"}),
                "face_analysis": (FACE_ANALYSIS, {"tooltip": "detects and embeds the generated faces"}),
                "match_threshold": (
                    "FLOAT",
                    {
                        "default": 0.2,
                        "min": -1.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "least cosine similarity for a face to count as a person (else a stranger)",
                    },
                ),
                "iou_threshold": (
                    "FLOAT",
                    {
                        "default": 0.3,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "a face is in its box at this IoU, or when its centre lies inside the box",
                    },
                ),
            }
        }

    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("scores", "annotated")
    OUTPUT_TOOLTIPS = (
        "JSON list, one entry per image: identities [{identity, similarity, iou, in_box, missing, "
        "...}], n_missing, n_duplicates, n_strangers, mean_iou, in_box_rate, faces",
        "the images with target boxes and detected faces drawn in each person's colour",
    )
    FUNCTION = "evaluate"
    CATEGORY = "AnyPhoto/evaluation"

    def evaluate(self, images, face_refs, canvas, face_analysis, match_threshold, iou_threshold):
        # evaluation code is imported only when this node runs (the pack stays free of it otherwise)
        from anyphoto_core.evaluation.analyzer import AlignedFaceAnalyzer
        from anyphoto_core.evaluation.single_image import (
            annotate_evaluation,
            evaluate_image,
            evaluation_json,
            scale_boxes,
        )

        if len(face_refs) != len(canvas.placements):
            raise ValueError(
                f"{len(face_refs)} people in face_refs but {len(canvas.placements)} boxes in canvas: "
                "connect the face_refs and canvas used for the generation"
            )
        refs = np.stack([ident.embedding for ident in face_refs])
        analyzer = AlignedFaceAnalyzer(face_analysis, arcface_crop)
        scores, drawn = [], []
        for k, image in enumerate(host.image_to_arrays(images)):
            targets = scale_boxes([p.box for p in canvas.placements], canvas.size, (image.shape[1], image.shape[0]))
            result = evaluate_image(analyzer, image, targets, refs, match_threshold, iou_threshold)
            scores.append({"image": k, **evaluation_json(result)})
            drawn.append(annotate_evaluation(image, result))
        return (json.dumps(scores, indent=1), host.arrays_to_image(drawn))
