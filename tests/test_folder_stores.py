"""rpn_core.annotation.folder_stores: where a folder's annotations live and which stores it
uses, without a window (real files in tmp_path)."""

from pathlib import Path

from PIL import Image

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.folder_stores import FolderStores, StorePolicy, annotation_folder


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30)).save(path)
    return path


def test_the_folder_is_save_dir_then_yolo_labels_then_fallback_then_beside(tmp_path):
    images = tmp_path / "data" / "images" / "train"
    _image(images / "a.png")
    (tmp_path / "data" / "labels" / "train").mkdir(parents=True)
    plain = tmp_path / "plain"
    _image(plain / "b.png")
    chosen, fallback = tmp_path / "chosen", tmp_path / "fallback"
    assert annotation_folder(images, StorePolicy(save_dir=chosen)) == chosen
    assert annotation_folder(images, StorePolicy(fallback_dir=fallback)) == (
        tmp_path / "data" / "labels" / "train"
    )
    assert annotation_folder(plain, StorePolicy(fallback_dir=fallback)) == fallback
    assert annotation_folder(plain, StorePolicy()) == plain


def test_yolo_dataset_reads_its_data_yaml_names_and_saves_yolo(tmp_path):
    images = tmp_path / "ds" / "images"
    _image(images / "a.png")
    labels = tmp_path / "ds" / "labels"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "ds" / "data.yaml").write_text("names: [cat, dog]\n")
    stores = FolderStores(images, StorePolicy())
    assert stores.folder == labels and stores.read.fmt == "yolo" and stores.save is stores.read
    assert stores.yaml_classes == ["cat", "dog"]
    ann = stores.read.load(images / "a.png", width=40, height=30)
    assert [b.label for b in ann.boxes] == ["dog"]  # id 1 of the data.yaml
    # 0.5 * 40 = 20 wide, centred at 20: x 10..30; 0.5 * 30 = 15 high, centred at 15: y 7.5..22.5
    assert ann.boxes[0].xyxy == (10.0, 7.5, 30.0, 22.5)


def test_switching_the_save_format_back_reuses_the_store_it_wrote_with(tmp_path):
    img = _image(tmp_path / "a.png")
    stores = FolderStores(tmp_path, StorePolicy())
    assert stores.read is None and stores.save_format == "voc"  # "auto" on an empty folder
    voc = stores.save
    voc.save(ImageAnnotation(img, 40, 30, [Box(1, 2, 11, 12, "cat")]))
    stores.set_policy(StorePolicy(save_format="yolo"))
    assert stores.save.fmt == "yolo"
    stores.set_policy(StorePolicy(save_format="voc"))
    assert stores.save is voc  # the same store: it knows it wrote a.xml (no backup of it)
    assert {s.fmt for s in stores.opened()} == {"voc", "yolo"}
    # A new session on the folder reads the VOC file it finds.
    again = FolderStores(tmp_path, StorePolicy())
    assert again.read.fmt == "voc" and again.classes() == []  # VOC keeps no class map
    copies = again.fresh_copies()()
    assert [s.fmt for s in copies] == ["voc"] and all(s is not again.read for s in copies)
