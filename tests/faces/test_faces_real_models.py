"""Real detector + (test-only) recognizer on real photos: same person is closer than different people."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fixtures.face_models import real_photo_path

from anyphoto_core.faces import build_identity, face_ref_from_photo

pytestmark = pytest.mark.torchfree


def _photo(name):
    path = real_photo_path(name)
    if not path.is_file():
        pytest.skip(f"{path} missing: run scripts/fetch_test_face_models.sh")
    return path


def _other_people():
    from skimage import data

    people = {"astronaut": data.astronaut()}
    try:
        import matplotlib.cbook

        people["grace_hopper"] = np.asarray(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    except ImportError:
        pass
    return people


@pytest.fixture(scope="module")
def obama(real_analyzer):
    return build_identity([_photo("obama.jpg"), _photo("obama2.jpg"), _photo("obama3.jpg")], real_analyzer)


@pytest.fixture(scope="module")
def biden(real_analyzer):
    return face_ref_from_photo(_photo("biden.jpg"), real_analyzer).embedding


def test_same_person_more_similar_than_different(real_analyzer, obama, biden):
    obama = [f.embedding for f in obama.faces]
    others = [biden] + [face_ref_from_photo(img, real_analyzer, name=n).embedding for n, img in _other_people().items()]
    same = [float(a @ b) for a, b in itertools.combinations(obama, 2)]
    diff = [float(a @ b) for a in obama for b in others]
    assert min(same) > 0.5 and max(diff) < 0.4 and min(same) - max(diff) > 0.2


def test_identity_from_several_real_photos(obama, biden):
    ident = obama
    assert all(f.faces_found == 1 for f in ident.faces)
    assert ident.primary.score == max(f.score for f in ident.faces)
    # the aggregate is closer to each photo than the photos are to Biden
    assert min(float(ident.embedding @ f.embedding) for f in ident.faces) > float(ident.embedding @ biden) + 0.3
