"""Annotation faults for every adapter: COCO / Flickr30K (Karpathy and LAVIS files), MSR-VTT
(CSV and JSON) and the synthetic data. Each is refused with one line naming the file and the
problem, or (a UTF-8 byte-order mark) accepted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from faults_build import BOM, dump, flickr_karpathy, jpeg_bytes, write
from faults_cases import Case, check, params
from faults_runner import valid_json

# -- helpers ---------------------------------------------------------------------------------


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    new = change(data)
    path.write_text(dump(data if new is None else new))


def _bom(path: Path) -> None:
    path.write_bytes(BOM + path.read_bytes())


def _outside_link(ctx, link: Path, data: bytes) -> None:
    """Replace ``link`` (inside a dataset root) by a symlink to a real file outside the root."""
    target = write(ctx.dir / "outside" / ("elsewhere" + link.suffix), data)
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def _accepted(items: int):
    def then(ctx, outcome):
        result = valid_json(ctx.dir / "new.json")
        assert result["dataset"]["counts"]["items"] == items, result["dataset"]

    return then


_ANNOTATION = {  # dataset -> (media folder, Karpathy file, LAVIS test file)
    "coco": ("", "dataset_coco.json", "coco_karpathy_test.json"),
    "flickr30k": ("flickr30k-images", "dataset_flickr30k.json", "flickr30k_test.json"),
}


def _karpathy_case(dataset, change, fmt, raw, bom, out, more=(), link=None):
    """A case setup: a COCO or Flickr root whose annotation file gets ``change``d (or
    replaced), optionally with a media file that links outside the root."""

    def setup(ctx):
        root = ctx.coco(fmt) if dataset == "coco" else ctx.flickr(fmt)
        folder, karpathy, lavis = _ANNOTATION[dataset]
        path = root / (karpathy if fmt == "karpathy" else lavis)
        if change is not None:
            _edit_json(path, change)
        if raw is not None:
            path.write_bytes(raw)
        if bom:
            _bom(path)
        if link:
            _outside_link(ctx, root / folder / link, jpeg_bytes())
        return ctx.eval(dataset, root, *more, out=ctx.dir / "new.json" if out == "new" else out)

    return setup


def coco(change=None, fmt="karpathy", raw: bytes | None = None, bom=False, out="prev", more=()):
    return _karpathy_case("coco", change, fmt, raw, bom, out, more=more)


def flickr(change=None, fmt="karpathy", raw: bytes | None = None, bom=False, out="prev", link=None):
    return _karpathy_case("flickr30k", change, fmt, raw, bom, out, link=link)


def _first_image(key, value):
    def change(data):
        data["images"][0][key] = value

    return change


def _repeat_first(data):
    data.append({"image": data[0]["image"], "caption": ["Another caption of the same image."]})


# -- COCO / Flickr30K ------------------------------------------------------------------------


def _coco_missing(ctx):
    root = ctx.coco()
    (root / "dataset_coco.json").unlink()
    return ctx.eval("coco", root)


def _coco_symlink(ctx):
    root = ctx.coco()
    _outside_link(ctx, root / "val2014" / "COCO_val2014_000000391895.jpg", jpeg_bytes())
    return ctx.eval("coco", root)


def _all_train(data):
    for entry in data["images"]:
        entry["split"] = "train"


def _sentences_str(data):
    data["images"][1]["sentences"] = "A woman cutting a cake."


def _raw_int(data):
    data["images"][0]["sentences"][0]["raw"] = 5


def _no_filename(data):
    del data["images"][1]["filename"]


def _lavis_caption(value):
    def change(data):
        data[1]["caption"] = value

    return change


def _lavis_image(value):
    def change(data):
        data[0]["image"] = value

    return change


OUTSIDE = ("outside",)
LINK = ("outside", "symlink")

KARPATHY_LAVIS = [
    Case("ann-coco-karpathy-missing", "COCO root without dataset_coco.json",
         "refuses: names the file and where it looked", _coco_missing,
         words=("dataset_coco.json", ("not found", "no annotation"))),
    Case("ann-coco-karpathy-malformed-json", "dataset_coco.json cut off mid-way",
         "refuses: not valid JSON, with the line", coco(raw=dump({"images": [1, 2]})[:17].encode()),
         words=("dataset_coco.json", "json")),
    Case("ann-coco-karpathy-empty-file", "dataset_coco.json of 0 bytes", "refuses: not valid JSON",
         coco(raw=b""), words=("dataset_coco.json", ("json", "empty"))),
    Case("ann-coco-karpathy-images-not-list", '"images" is an object', "refuses: names the key",
         coco(lambda d: {"images": {"a": 1}}), words=("dataset_coco.json", "images")),
    Case("ann-coco-karpathy-sentences-wrong-type", '"sentences" is a string',
         "refuses: names the entry and the key", coco(_sentences_str),
         words=("images[1]", "sentences")),
    Case("ann-coco-karpathy-filepath-int", '"filepath": 2014 (a number)',
         "refuses: names the entry and the expected type", coco(_first_image("filepath", 2014)),
         words=("images[0]", "filepath")),
    Case("ann-coco-karpathy-no-test-images", "no entry has split 'test'",
         "refuses: no images for the split", coco(_all_train), words=("no images", "test")),
    Case("ann-coco-karpathy-dotdot", '"filepath": "../outside"',
         "refuses: the path resolves outside the root",
         coco(_first_image("filepath", "../outside")),
         words=(*OUTSIDE, "../outside")),
    Case("ann-coco-karpathy-absolute", '"filepath": "/etc"', "refuses: outside the root",
         coco(_first_image("filepath", "/etc")), words=(*OUTSIDE, "/etc")),
    Case("ann-coco-karpathy-symlink-out", "an image that is a symlink to a file outside the root",
         "refuses: names the image", _coco_symlink, words=(LINK, "COCO_val2014_000000391895")),
    Case("ann-coco-karpathy-bom", "dataset_coco.json starting with a UTF-8 BOM",
         "accepts it (exit 0)", coco(bom=True, out="new"), code=0, then=_accepted(3)),
    Case("ann-flickr-karpathy-missing-key", 'an entry without "filename"',
         "refuses: names the entry and the key", flickr(_no_filename),
         words=("images[1]", "filename")),
    Case("ann-flickr-karpathy-raw-not-string", '"raw": 5', "refuses: names the sentence and key",
         flickr(_raw_int), words=("sentences[0]", "raw")),
    Case("ann-flickr-karpathy-not-utf8", "dataset_flickr30k.json in Latin-1",
         "refuses: not UTF-8 text", flickr(raw=dump(flickr_karpathy()).replace(
             "glasses", "lunettes \u00e9").encode("latin-1")),
         words=("dataset_flickr30k.json", ("utf-8", "utf8"))),
    Case("ann-flickr-karpathy-dotdot", '"filename": "../../etc/x.jpg"',
         "refuses: outside the root", flickr(_first_image("filename", "../../etc/x.jpg")),
         words=(*OUTSIDE, "../../etc/x.jpg")),
    Case("ann-flickr-karpathy-bom", "dataset_flickr30k.json starting with a UTF-8 BOM",
         "accepts it (exit 0)", flickr(bom=True, out="new"), code=0, then=_accepted(3)),
    Case("ann-lavis-coco-repeated-image", "coco_karpathy_test.json lists one image twice",
         "refuses: names the image and both entries", coco(_repeat_first, fmt="lavis"),
         words=("COCO_val2014_000000391895", ("repeat", "twice", "duplicate", "more than once"))),
    Case("ann-lavis-flickr-repeated-image", "flickr30k_test.json lists one image twice",
         "refuses: names the image", flickr(_repeat_first, fmt="lavis"),
         words=("1007129816", ("repeat", "twice", "duplicate", "more than once"))),
    Case("ann-lavis-coco-dotdot", '"image": "../val2014/x.jpg"', "refuses: outside the root",
         coco(_lavis_image("../val2014/x.jpg"), fmt="lavis"), words=(*OUTSIDE, "../val2014/x.jpg")),
    Case("ann-lavis-coco-absolute", '"image": "/srv/x.jpg"', "refuses: outside the root",
         coco(_lavis_image("/srv/x.jpg"), fmt="lavis"), words=(*OUTSIDE, "/srv/x.jpg")),
    Case("ann-lavis-coco-not-list", "coco_karpathy_test.json holds an object",
         "refuses: expected a list", coco(lambda d: {"image": "a.jpg"}, fmt="lavis"),
         words=("coco_karpathy_test.json", "list")),
    Case("ann-lavis-coco-empty-list", "coco_karpathy_test.json is []", "refuses: no images",
         coco(lambda d: [], fmt="lavis"), words=("coco_karpathy_test.json", "no images")),
    Case("ann-lavis-coco-empty-captions", '"caption": []', "refuses: names the entry",
         coco(_lavis_caption([]), fmt="lavis"), words=("entry 1", "caption")),
    Case("ann-lavis-coco-caption-int", '"caption": 7', "refuses: names the entry and key",
         coco(_lavis_caption(7), fmt="lavis"), words=("entry 1", "caption")),
    Case("ann-lavis-flickr-malformed-json", "flickr30k_test.json with a trailing comma",
         "refuses: not valid JSON",
         flickr(raw=b'[{"image": "a.jpg", "caption": "x"},]', fmt="lavis"),
         words=("flickr30k_test.json", "json")),
    Case("ann-lavis-flickr-symlink-out", "an image symlinked to a file outside the root",
         "refuses: names the image", flickr(fmt="lavis", link="1007129816.jpg"),
         words=(LINK, "1007129816")),
    Case("ann-lavis-flickr-bom", "flickr30k_test.json starting with a UTF-8 BOM",
         "accepts it (exit 0)", flickr(fmt="lavis", bom=True, out="new"), code=0,
         then=_accepted(3)),
]  # fmt: skip


# -- MSR-VTT ---------------------------------------------------------------------------------


def msrvtt(split="test", csv: bytes | None = None, data=None, raw_json: bytes | None = None,
           bom=None, link=None, remove=None, out="prev"):  # fmt: skip
    def setup(ctx):
        root = ctx.msrvtt()
        if csv is not None:
            (root / "MSRVTT_JSFUSION_test.csv").write_bytes(csv)
        if data is not None:
            _edit_json(root / "MSRVTT_data.json", data)
        if raw_json is not None:
            (root / "MSRVTT_data.json").write_bytes(raw_json)
        if bom:
            _bom(root / bom)
        if link:
            _outside_link(ctx, root / "videos" / link, ctx.base.mp4)
        if remove:
            (root / remove).unlink()
        target = ctx.dir / "new.json" if out == "new" else out
        return ctx.eval("msrvtt", root, "--split", split, "--frames", "2", out=target)

    return setup


def _captions_int(data):
    data["sentences"][2]["caption"] = 12


HEADER = b"key,vid_key,video_id,sentence\n"
MSRVTT_CASES = [
    Case("ann-msrvtt-csv-missing", "MSRVTT_JSFUSION_test.csv absent",
         "refuses: names the file and where it looked", msrvtt(remove="MSRVTT_JSFUSION_test.csv"),
         words=("MSRVTT_JSFUSION_test.csv", "not found")),
    Case("ann-msrvtt-csv-empty", "MSRVTT_JSFUSION_test.csv of 0 bytes",
         "refuses: empty file, expected header", msrvtt(csv=b""),
         words=("MSRVTT_JSFUSION_test.csv", "empty")),
    Case("ann-msrvtt-csv-no-column", "header without video_id", "refuses: names the column",
         msrvtt(csv=b"key,vid_key,video,sentence\nret0,msr7010,video7010,a cat\n"),
         words=("MSRVTT_JSFUSION_test.csv", "video_id")),
    Case("ann-msrvtt-csv-field-count", "a row with 2 of 4 fields", "refuses: names the row",
         msrvtt(csv=HEADER + b"ret0,msr7010,video7010,a cat\nret1,msr7011\n"),
         words=("MSRVTT_JSFUSION_test.csv", "row 3")),
    Case("ann-msrvtt-csv-not-utf8", "a CSV in Latin-1", "refuses: not UTF-8 text",
         msrvtt(csv=HEADER + "ret0,msr7010,video7010,un caf\u00e9\n".encode("latin-1")),
         words=("MSRVTT_JSFUSION_test.csv", ("utf-8", "utf8"))),
    Case("ann-msrvtt-csv-dotdot-id", "video_id ../../secret", "refuses: outside the root",
         msrvtt(csv=HEADER + b"ret0,msr1,../../secret,a cat\n"), words=(*OUTSIDE, "secret")),
    Case("ann-msrvtt-train-csv-bom", "MSRVTT_train.9k.csv starting with a UTF-8 BOM",
         "accepts it (exit 0)", msrvtt(split="train-9k", bom="MSRVTT_train.9k.csv", out="new"),
         code=0, then=_accepted(2)),
    Case("ann-msrvtt-json-malformed", "MSRVTT_data.json cut off", "refuses: not valid JSON",
         msrvtt(split="full-test", raw_json=b'{"videos": [{"video_id": "video7010"'),
         words=("MSRVTT_data.json", "json")),
    Case("ann-msrvtt-json-sentences-wrong-type", '"sentences" is an object',
         "refuses: names the key", msrvtt(split="full-test", data=lambda d: d | {"sentences": {}}),
         words=("MSRVTT_data.json", "sentences")),
    Case("ann-msrvtt-json-caption-int", '"caption": 12', "refuses: names the sentence and key",
         msrvtt(split="full-test", data=_captions_int), words=("sentences[2]", "caption")),
    Case("ann-msrvtt-json-bom", "MSRVTT_data.json starting with a UTF-8 BOM",
         "accepts it (exit 0)", msrvtt(split="full-test", bom="MSRVTT_data.json", out="new"),
         code=0, then=_accepted(2)),
    Case("ann-msrvtt-video-symlink-out", "a video symlinked to a file outside the root",
         "refuses: names the video", msrvtt(link="video7010.mp4"), words=(LINK, "video7010")),
]  # fmt: skip


# -- synthetic -------------------------------------------------------------------------------


def _rehash(root: Path) -> None:
    """Make the manifest agree with edited annotations (a tampered but consistent root)."""
    from vilem.data.synthetic import _content_hash, _sha256

    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"] = {rel: _sha256(root / rel) for rel in manifest["files"]}
    manifest["content_hash"] = _content_hash(manifest["files"])
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))


def synthetic(annotation=None, manifest: bytes | None = None, bom=False, link=False, more=(),
              out="prev"):  # fmt: skip
    def setup(ctx):
        root = ctx.synthetic()
        if annotation is not None:
            _edit_json(root / "annotations" / "images_test.json", annotation)
            _rehash(root)
        if manifest is not None:
            (root / "manifest.json").write_bytes(manifest)
        if bom:
            _bom(root / "manifest.json")
        if link:
            path = root / "images" / "test" / "img_test_00000.png"
            _outside_link(ctx, path, path.read_bytes())
        return ctx.eval("synthetic", root, *more, out=ctx.dir / "new.json" if out == "new" else out)

    return setup


def _item_file(value):
    def change(data):
        data["items"][0]["file"] = value

    return change


def _root_is_file(ctx):
    write(ctx.dir / "syn", b"not a folder")
    return ctx.eval("synthetic", ctx.dir / "syn")


SYNTHETIC_CASES = [
    Case("ann-syn-manifest-malformed", "manifest.json cut off", "refuses: not valid JSON",
         synthetic(manifest=b'{"generator": "vilem.synth'), words=("manifest.json", "json")),
    Case("ann-syn-manifest-foreign", "a manifest.json another tool wrote",
         "refuses: not a vilem synthetic manifest (nothing regenerated)",
         synthetic(manifest=b'{"generator": "someone-else"}'), words=("manifest.json",)),
    Case("ann-syn-manifest-bom", "manifest.json starting with a UTF-8 BOM",
         "accepts it and reuses the data (exit 0, nothing regenerated)",
         synthetic(bom=True, out="new"), code=0, then=_accepted(4)),
    Case("ann-syn-annotation-dotdot", 'an item "file": "../../x.png" (manifest re-hashed)',
         "refuses: outside the root", synthetic(_item_file("../../x.png")),
         words=(*OUTSIDE, "../../x.png")),
    Case("ann-syn-annotation-absolute", 'an item "file": "/etc/passwd"',
         "refuses: outside the root", synthetic(_item_file("/etc/passwd")),
         words=(*OUTSIDE, "/etc/passwd")),
    Case("ann-syn-annotation-wrong-type", '"items" is a string', "refuses: names the key",
         synthetic(lambda d: d | {"items": "x"}), words=("images_test.json", "items")),
    Case("ann-syn-annotation-missing-key", "an item without captions",
         "refuses: names the item", synthetic(lambda d: d["items"][1].pop("captions") and None),
         words=("images_test.json", ("item 1", "captions"))),
    Case("ann-syn-symlink-out", "an image symlinked to a file outside the root",
         "refuses: names the image", synthetic(link=True), words=(LINK, "img_test_00000")),
    Case("ann-syn-root-is-file", "--root names a file", "refuses: not a folder", _root_is_file,
         words=(("not a folder", "not a directory"),)),
    Case("ann-syn-unknown-option", "--data-option colour=red", "refuses: names the option",
         synthetic(more=("--data-option", "colour=red")), words=("colour",)),
]  # fmt: skip

CASES = KARPATHY_LAVIS + MSRVTT_CASES + SYNTHETIC_CASES


@pytest.mark.parametrize("case", params(CASES))
def test_annotation_fault(case, ctx, vilem):
    check(case, ctx, vilem)
