"""The audit finds what was planted: duplicates across splits and sets, a disguised PNG, a broken file."""

from __future__ import annotations

import json

import pytest
from PIL import Image

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from training.audit import audit  # noqa: E402


def test_audit_reports_planted_problems(tiny_datasets, tmp_path):
    btm, br = tiny_datasets["btm"], tiny_datasets["br35h"]
    Image.open(br / "yes" / "yes_000.jpg").save(br / "yes" / "disguised.jpg", format="PNG")
    (br / "no" / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    report = audit([str(btm), str(br)], str(tmp_path / "audit"))
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["files"] == report["files"] == 96 + 2 + 28 + 1 + 2
    assert report["inventory"]["brain-tumor-mri"]["Testing"]["glioma"] == 13
    assert [u["path"] for u in report["unreadable"]] == ["no/broken.jpg"]
    assert report["extension_does_not_match_content"] == [{"dataset": "br35h", "path": "yes/disguised.jpg", "content": "PNG"}]
    assert report["exact_duplicates"]["groups_across_official_splits"] == {"brain-tumor-mri": 1}
    near = report["near_duplicates"]
    assert near["groups_across_official_splits"] == {"brain-tumor-mri": 2}
    assert near["groups_across_datasets"] == 1
    assert report["testing_images_with_near_copy_in_training"] == 2
    for png in ("class_balance.png", "samples.png", "pca.png"):
        assert (tmp_path / "audit" / png).stat().st_size > 1000
    assert "Dataset audit" in (tmp_path / "audit" / "audit.md").read_text()
