"""The anchor lab in a real canvas: loading state, live relabel while dragging a GT box with
the mouse, settings applied and persisted, inspector, GT highlight, modes and design panel."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMainWindow

import resources
from app.anchor_lab.controller import LOADING, install_anchor_lab
from app.anchor_lab.overlay import CATEGORY_STYLE
from app.anchor_lab.settings_panel import ANCHOR_KEY, LABEL_KEY
from app.canvas.canvas import Canvas
from app.state.app_state import AppStateModel
from app.state.qdocument import AnnotationDocument
from rpn_core.anchors.grid import AnchorConfig
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.anchors.view import Category, DisplayMode, ViewOptions, categorize
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.app_state import AppState
from rpn_core.images.loading import load_image
from rpn_core.rpn.config import RPNConfig, label_in_input_frame

# The lab tiles and labels anchors in the model's input frame: the 320x240 image is resized
# to 800x600 (shorter side 600, scale 2.5) and the GT scaled by 2.5. SPARSE is one 160x160
# anchor per location at stride 320 there: grid ceil(600/320) x ceil(800/320) = 2 x 3, centres
# x in {0, 320, 640}, y in {0, 320}. Drawn in original pixels (/ 2.5) that is one 64x64 anchor
# at stride 128: centres x in {0, 128, 256}, y in {0, 128}; anchor index = row * 3 + col, e.g.
# index 4 = (240, 240, 400, 400) in the input frame = (96, 96, 160, 160) in the image. IoUs and
# regression targets are unchanged by the common scale, so the arithmetic below is in image px.
SPARSE = AnchorConfig(sizes=(160.0,), aspect_ratios=(1.0,), stride=320)


class LabWindow(QMainWindow):
    """The workspace's real document and canvas, without the rest of the main window."""

    def __init__(self) -> None:
        super().__init__()
        self.document = AnnotationDocument(self)
        self.canvas = Canvas(self.document, self)
        self.setCentralWidget(self.canvas)


# A session on a model of version 3's kind (shorter side 600, stride-8 and stride-16 levels):
# the frame the arithmetic of these tests is written in. The embedded model (the SSD's six
# levels on a 300 x 300 squash) has its own test below.
TWO_LEVELS = RPNConfig(
    anchors=AnchorConfig(
        sizes=(16.0, 32.0, 64.0, 128.0, 256.0, 512.0), size_strides=(8, 8, 16, 16, 16, 16)
    ),
    context=True,
)


def _embedded_state() -> AppStateModel:
    """The app state of a session on a two-level model (see :data:`TWO_LEVELS`)."""
    return AppStateModel(AppState.for_model(TWO_LEVELS))


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "lab.ini"), QSettings.Format.IniFormat)


def _open(window: LabWindow, folder, boxes: list[Box]) -> None:
    path = folder / "img.png"
    Image.new("RGB", (320, 240), (90, 90, 90)).save(path)
    window.document.set_image(load_image(path), ImageAnnotation(path, 320, 240, boxes))


@pytest.fixture
def lab(qtbot, tmp_path, settings):
    window = LabWindow()
    qtbot.addWidget(window)
    _open(window, tmp_path, [Box(100, 100, 160, 160)])
    lab = install_anchor_lab(window.document, window.canvas, _embedded_state(), settings, window)
    assert lab.overlay._message == LOADING and lab.labels is None  # the window comes first
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: lab.ready, timeout=60000)
    window.canvas.set_zoom(2.0)
    window.canvas.centerOn(QPointF(160, 120))
    yield lab  # (the window, the lab's parent, stays referenced until the test ends)


def _vp(lab, x: float, y: float) -> QPoint:
    return lab.canvas.mapFromScene(QPointF(x, y))


def _expected(lab, gt) -> np.ndarray:
    labels = label_in_input_frame(
        lab.image_size, np.array(gt, np.float32), lab.anchor_config, lab.label_config
    )
    return categorize(
        labels.labels.numpy(), labels.low_quality.numpy(), labels.cross_boundary.numpy()
    )


def test_overlay_draws_the_models_labels(lab):
    assert lab.overlay._message == ""
    # 320x240 is resized to the 800x600 input frame (scale 2.5). The fresh settings' default
    # is the session model's two levels: 75 x 100 stride-8 cells x 6 anchors (16, 32 px x 3
    # ratios), then ceil(600/16) x ceil(800/16) stride-16 cells x 12 (64-512 px x 3 ratios).
    assert lab.anchor_config.num_anchors_per_location == 18
    assert len(lab.anchors) == 75 * 100 * 6 + 38 * 50 * 12
    np.testing.assert_array_equal(lab.categories, _expected(lab, [[100, 100, 160, 160]]))
    shown = lab.overlay.visible()
    assert len(shown[Category.FOREGROUND]) + len(shown[Category.LOW_QUALITY]) > 0


def test_dragging_a_gt_box_relabels_on_every_mouse_move(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.guide())  # fg IoU > 0.5, bg < 0.1, no best-anchor rule
    assert lab.input_size == (600, 800) and len(lab.anchors) == 2 * 3
    np.testing.assert_allclose(lab.anchors[4], [240 / 2.5, 240 / 2.5, 400 / 2.5, 400 / 2.5])
    # GT (100, 100, 160, 160) vs anchor 4 (96, 96, 160, 160): IoU 3600 / 4096 = 0.879 -> fg
    # (input frame: (250, 250, 400, 400) vs (240, 240, 400, 400): 22500 / 25600, the same).
    assert lab.categories[4] == Category.FOREGROUND
    vp = lab.canvas.viewport()
    qtbot.mousePress(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 130, 130)
    )
    seen = []
    for step in range(1, 8):  # move the box right by 10 image px per step: 70 px in all
        qtbot.mouseMove(vp, _vp(lab, 130 + 10 * step, 130))
        seen.append(lab.categories[4])
        np.testing.assert_array_equal(lab.categories, _expected(lab, lab.gt))
    # Still dragging: the document is unchanged, the labels follow the live box.
    assert lab.document.boxes[0].xyxy == (100, 100, 160, 160)
    # Anchor 4 vs GT moved by d (x1 = 100 + d), overlap (60 - d) x 60, union 7696 - inter:
    # d=10: 3000 / 4696 = 0.639 > 0.5 fg; d=40: 1200 / 6496 = 0.185 ignored; d=70: 0 bg.
    assert seen[0] == Category.FOREGROUND
    assert seen[3] == Category.IGNORED
    assert seen[6] == Category.BACKGROUND
    assert lab.labels.max_iou[4].item() == 0.0
    qtbot.mouseRelease(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 200, 130)
    )
    assert lab.document.boxes[0].x1 == pytest.approx(170, abs=1)
    np.testing.assert_array_equal(lab.categories, _expected(lab, lab.document.boxes_array()))


def test_foreground_anchor_is_painted_yellow(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.faster_rcnn())
    qtbot.wait(50)
    image = lab.canvas.viewport().grab().toImage()
    yellow = CATEGORY_STYLE[Category.FOREGROUND][0]
    p = _vp(lab, 128, 96)  # the middle of anchor 4's top edge
    colours = {QColor(image.pixel(p.x(), p.y() + dy)).name() for dy in range(-2, 3)}
    assert yellow.name() in colours
    lab.document.remove_boxes([0])  # no GT: everything background, no yellow
    qtbot.wait(50)
    image = lab.canvas.viewport().grab().toImage()
    colours = {QColor(image.pixel(p.x(), p.y() + dy)).name() for dy in range(-2, 3)}
    assert yellow.name() not in colours


def test_preset_and_anchor_settings_apply_live_and_persist(qtbot, lab, settings):
    panel = lab.settings_panel
    panel.preset.setCurrentText("Guide (0.5 / 0.1)")
    assert lab.label_config == LabelConfig.guide()
    panel.sizes.selectAll()
    qtbot.keyClicks(panel.sizes, "48, 96")
    qtbot.keyClick(panel.sizes, Qt.Key.Key_Return)
    assert lab.anchor_config.sizes == (48.0, 96.0)
    assert len(lab.anchors) == 38 * 50 * 6  # 800x600 input frame: ceil(600/16) x ceil(800/16)
    settings.sync()
    assert "48" in settings.value(ANCHOR_KEY) and '"fg_iou": 0.5' in settings.value(LABEL_KEY)
    # A bad value is marked and not applied.
    panel.sizes.selectAll()
    qtbot.keyClicks(panel.sizes, "48, -3")
    qtbot.keyClick(panel.sizes, Qt.Key.Key_Return)
    assert lab.anchor_config.sizes == (48.0, 96.0)
    assert "not applied" in panel.status.text()


def test_settings_are_restored_by_a_new_lab(qtbot, tmp_path, settings):
    settings.setValue(ANCHOR_KEY, '{"sizes": [32], "aspect_ratios": [1, 2], "stride": 8}')
    settings.setValue(LABEL_KEY, '{"fg_iou": 0.6, "bg_iou": 0.2}')
    window = LabWindow()
    qtbot.addWidget(window)
    lab = install_anchor_lab(window.document, window.canvas, _embedded_state(), settings, window)
    assert lab.anchor_config == AnchorConfig(sizes=(32,), aspect_ratios=(1, 2), stride=8)
    assert (lab.label_config.fg_iou, lab.label_config.bg_iou) == (0.6, 0.2)
    assert lab.settings_panel.preset.currentText() == "Custom"
    qtbot.waitUntil(lambda: lab.ready, timeout=60000)


def test_inspector_explains_the_hovered_anchor(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.faster_rcnn())
    qtbot.mouseMove(lab.canvas.viewport(), _vp(lab, 128, 96.5))
    inspector = lab.inspector
    assert inspector.current == 4
    text = inspector.text.text()
    # Explained in the input frame the label came from: anchor 4 = (240, 240, 400, 400), cell
    # (row 1, col 1) of the 2 x 3 grid; GT (250, 250, 400, 400). Targets: GT centre 325, anchor
    # centre 320, width 160 -> tx = ty = 5/160 = 2/64 = 0.031; tw = th = log(150/160) =
    # log(60/64) = -0.065 (the same as in image pixels: targets are scale-free).
    # The fixture's box has no class; the Boxes list shows it in row 1.
    assert "Anchor 4" in text and "foreground: IoU 0.879 with box 1 (no class)" in text
    assert "cell (row 1, col 1)" in text and "box (240, 240, 400, 400)" in text
    assert f"({2 / 64:.3f}, {2 / 64:.3f}, {math.log(60 / 64):.3f}, {math.log(60 / 64):.3f})" in text
    assert inspector.ious.item(0, 1).text() == "0.879"
    # Far from every anchor outline: nothing.
    qtbot.mouseMove(lab.canvas.viewport(), _vp(lab, 40, 200))
    assert inspector.current is None


def test_selecting_a_gt_box_highlights_its_positives_and_flags_unlearnable(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.guide())
    lab.document.insert_boxes([Box(10, 10, 20, 20)])  # best IoU 100 / 4096 < 0.5: no fg
    qtbot.mouseClick(
        lab.canvas.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        _vp(lab, 130, 130),
    )
    assert lab.document.selection == [0]
    assert len(lab.overlay._highlight) == 1  # anchor 4
    assert "box 1 (no class)" in lab.inspector.gt_title.text()
    table = lab.inspector.gt_table
    assert table.rowCount() == 2 and table.item(1, 2).text() == "0"
    assert "cannot be learned" in table.item(1, 0).toolTip()
    # On the canvas, the unlearnable box is outlined in vermillion.
    assert [r.getCoords() for r in lab.overlay.flagged] == [(10, 10, 20, 20)]
    lab.document.select([1])
    assert len(lab.overlay._highlight) == 0
    assert "no anchor learns this box" in lab.inspector.gt_title.text()


def test_minibatch_mode_is_seeded_and_balanced(qtbot, lab):
    panel = lab.settings_panel
    panel.mode.setCurrentText("Training minibatch")
    first = {c: v.copy() for c, v in lab.overlay.visible().items()}
    n_pos = len(first[Category.FOREGROUND]) + len(first[Category.LOW_QUALITY])
    n_all = sum(len(v) for v in first.values())
    assert n_all == 256 and 0 < n_pos <= 128
    assert len(first[Category.IGNORED]) == 0  # ignored anchors never enter the loss
    lab.relabel()  # same seed -> same batch
    np.testing.assert_array_equal(
        lab.overlay.visible()[Category.BACKGROUND], first[Category.BACKGROUND]
    )
    qtbot.mouseClick(panel.reseed, Qt.MouseButton.LeftButton)
    assert not np.array_equal(
        lab.overlay.visible()[Category.BACKGROUND], first[Category.BACKGROUND]
    )


def test_density_filters_and_legend(qtbot, lab):
    overlay = lab.overlay
    assert overlay.options.mode is DisplayMode.DENSITY
    n_bg = int((lab.categories == Category.BACKGROUND).sum())
    assert len(overlay.visible()[Category.BACKGROUND]) <= 800 < n_bg
    n_ignored = int((lab.categories == Category.IGNORED).sum())
    assert len(overlay.visible()[Category.IGNORED]) == n_ignored  # all of them
    check = lab.stats.checks[Category.BACKGROUND]
    qtbot.mouseClick(check, Qt.MouseButton.LeftButton, pos=QPoint(6, check.height() // 2))
    assert Category.BACKGROUND not in overlay.visible()
    assert lab.stats.counts[Category.BACKGROUND].text() == f"{n_bg:,}"
    lab.settings_panel.set_view(ViewOptions(mode=DisplayMode.ALL, ratios=frozenset({1})))
    idx = lab.overlay.visible_all()
    assert len(idx) and (lab.meta.ratio_index[idx] == 1).all()


def test_design_panel_clusters_and_applies(qtbot, lab):
    lab.document.insert_boxes([Box(10, 10, 40, 100), Box(200, 20, 300, 60), Box(50, 150, 80, 230)])
    design = lab.design
    design.k_max.setValue(3)
    with qtbot.waitSignal(lab.anchor_config_applied, timeout=60000) as blocker:
        qtbot.mouseClick(design.compute_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: design.apply_button.isEnabled(), timeout=60000)
        assert [r.k for r in design.run.curve] == [1, 2, 3]
        design.k.setValue(3)
        qtbot.mouseClick(design.apply_button, Qt.MouseButton.LeftButton)
    applied = blocker.args[0]
    assert applied == lab.anchor_config and applied.num_anchors_per_location > 1
    assert lab.settings_panel.sizes.text() == ", ".join(f"{s:g}" for s in applied.sizes)


def test_main_window_shows_the_sample_with_default_anchors(qtbot, app_settings):
    from app.shell.main_window import MainWindow

    window = MainWindow(settings=app_settings)
    qtbot.addWidget(window)
    lab = window.anchor_lab
    assert lab.overlay.scene() is window.canvas.scene()
    assert window.open_paths([str(resources.path_of(resources.SAMPLE_IMAGE))])
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: lab.labels is not None, timeout=60000)
    # nothing stored in the fresh settings: the embedded model's anchors, from its sidecar
    side = json.loads(resources.path_of("weights/rpn_mobilenetv2.json").read_text())
    assert lab.anchor_config == AnchorConfig.from_dict(side["config"]["anchors"])
    w, h = window.document.size
    # Tiled on the model's input frame: the image squashed to 300 x 300, as the SSD was
    # trained; six levels of 19, 10, 5, 3, 2 and 1 cells a side, 10 anchors a cell.
    assert lab.input_size == (300, 300)
    assert len(lab.anchors) == sum(n * n * 10 for n in (19, 10, 5, 3, 2, 1)) == 5000
    # the twelve sizes do not fit the field: it shows their start, "30@16, 60@16, ..."
    assert lab.settings_panel.sizes.text().startswith("30@16, 60@16, 105@32")
    assert lab.settings_panel.sizes.cursorPosition() == 0
    # drawn in the photo's pixels: the first anchor of the last level (285 px, h/w 1/3)
    # spans the squashed frame's middle, scaled back by (w / 300, h / 300)
    big = lab.anchors[-10]
    assert (big[0] + big[2]) / 2 == pytest.approx(w / 2, abs=1)
    assert (big[1] + big[3]) / 2 == pytest.approx(h / 2, abs=1)
    # The light default (issue 14) draws only foreground anchors: none without GT boxes.
    assert len(lab.overlay.visible_all()) == 0
    window.actions.all_anchors.trigger()
    assert len(lab.overlay.visible_all()) > 0  # a sample of background anchors at least


def test_click_pins_an_anchor_until_the_next_click(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.faster_rcnn())
    vp = lab.canvas.viewport()
    # Anchor 5 = (224, 96, 288, 160): its right edge at x = 288, outside the GT box.
    qtbot.mouseClick(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 288.5, 130)
    )
    inspector = lab.inspector
    assert inspector.current == 5 and inspector.pinned and "pinned" in inspector.text.text()
    qtbot.mouseMove(vp, _vp(lab, 128, 96.5))  # over anchor 4: the pinned one stays
    assert inspector.current == 5
    qtbot.mouseClick(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 40, 200)
    )  # nowhere near an outline: unpin
    assert inspector.current is None and not inspector.pinned


def test_folder_statistics_and_folder_design(qtbot, lab, tmp_path):
    from rpn_core.annotation.formats.folder import open_store

    folder = tmp_path / "set"
    folder.mkdir()
    store = open_store(folder, "voc")
    for i in range(3):
        path = folder / f"img{i}.png"
        Image.new("RGB", (320, 240)).save(path)
        boxes = [Box(10 + i, 10, 74 + i, 74, "a"), Box(100, 50 + i, 228, 114 + i, "b")]
        store.save(ImageAnnotation(path, 320, 240, boxes))
    first = folder / "img0.png"
    lab.document.set_image(load_image(first), store.load(first, width=320, height=240))
    stats = lab.stats
    qtbot.mouseClick(stats.folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stats.folder_stats is not None, timeout=60000)
    assert stats.folder_stats.images == 3 and len(stats.folder_stats.best_iou) == 6
    assert "3 image(s), 6 GT box(es)" in stats.folder_text.text()
    # Labelled in the model's input frame, as the lab labels this very image (img0 comes first).
    here = label_in_input_frame(
        (240, 320), lab.document.boxes_array(), lab.anchor_config, lab.label_config
    )
    np.testing.assert_allclose(stats.folder_stats.best_iou[:2], here.gt_best_iou.numpy(), rtol=1e-6)
    design = lab.design
    design.source.setCurrentIndex(1)  # this image's folder
    design.k_max.setValue(2)
    qtbot.mouseClick(design.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: design.run is not None, timeout=60000)
    assert len(design.run.wh) == 6 and design.run.source == str(folder)
    # Two shape clusters: ~64 x 64 and 128 x 64 (+ up to 2 px) original pixels, designed in
    # the model's input frame (320 x 240 -> 800 x 600, x 2.5): 160 x 160 and 320 x 160 (+ 5).
    np.testing.assert_allclose(design.run.curve[1].centres, [[160, 160], [320, 160]], atol=5)


def test_overlay_follows_the_anchors_of_a_loaded_model(qtbot, app_settings):
    from app.shell.main_window import MainWindow
    from rpn_core.rpn.config import RPNConfig
    from rpn_core.rpn.model import RPNModel

    window = MainWindow(settings=app_settings)
    qtbot.addWidget(window)
    lab = window.anchor_lab
    qtbot.waitUntil(lambda: lab.ready, timeout=60000)
    other = AnchorConfig(sizes=(32.0, 64.0, 128.0, 256.0), aspect_ratios=(0.5, 1.0, 2.0))
    applied = []
    lab.anchor_config_applied.connect(applied.append)
    with qtbot.waitSignal(lab.configs_changed, timeout=10000):
        window.model_loader.set_model(RPNModel(RPNConfig(anchors=other)))
    assert applied == []  # the model's own set is not "applied" back to it
    assert lab.anchor_config == other and lab.label_config == LabelConfig.faster_rcnn()
    assert ANCHOR_KEY not in app_settings.q.allKeys()  # the user's own choice is not replaced
    assert "loaded model's anchors" in lab.settings_panel.status.text()
    assert any("sizes 32, 64, 128, 256" in t for _lv, t in window.message_bar.messages)
    # Back to another set by hand: the panel says the model still uses its own.
    panel = lab.settings_panel
    panel.sizes.selectAll()
    qtbot.keyClicks(panel.sizes, "64, 128")
    qtbot.keyClick(panel.sizes, Qt.Key.Key_Return)
    assert lab.anchor_config.sizes == (64.0, 128.0)
    assert "loaded model proposes from other anchors" in panel.status.text()


def _scaled_folder(root, scale: int):
    """Three 320 x 240 images (x ``scale``) with two boxes each, VOC files."""
    from rpn_core.annotation.formats.folder import open_store

    root.mkdir(parents=True)
    store = open_store(root, "voc")
    for i in range(3):
        path = root / f"img{i}.png"
        Image.new("RGB", (320 * scale, 240 * scale)).save(path)
        boxes = [Box(10 + i, 10, 54 + i, 94, "a"), Box(100, 50 + 2 * i, 228, 100 + 2 * i, "b")]
        boxes = [Box(*(scale * v for v in (b.x1, b.y1, b.x2, b.y2)), b.label) for b in boxes]
        store.save(ImageAnnotation(path, 320 * scale, 240 * scale, boxes))
    return root


@pytest.mark.parametrize("scale", [1, 4])
def test_design_reports_what_the_statistics_then_measure(qtbot, lab, tmp_path, scale):
    # Issue 15: the design step's figures for the chosen set (mean best IoU, best-possible
    # recall) are those the statistics panel measures once the set is applied, at 1x and 4x.
    from rpn_core.annotation.formats.folder import open_store

    folder = _scaled_folder(tmp_path / f"x{scale}", scale)
    first = folder / "img0.png"
    store = open_store(folder, "voc")
    w, h = 320 * scale, 240 * scale
    lab.document.set_image(load_image(first), store.load(first, width=w, height=h))
    lab.set_configs(lab.anchor_config, LabelConfig.guide())
    design = lab.design
    design.source.setCurrentIndex(1)  # this image's folder
    design.k_max.setValue(2)
    design.n_sizes.setValue(0)
    design.n_ratios.setValue(0)
    qtbot.mouseClick(design.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: design.run is not None and design.measured is not None, timeout=60000)
    design.k.setValue(2)
    qtbot.waitUntil(lambda: design.measured is not None, timeout=60000)
    # Both scales are 800 x 600 to the model: the clusters are the same input-frame shapes,
    # 44 x 84 (+1) and 128 x 50 original pixels at 1x -> x 2.5 = 110 x 210 and 320 x 125.
    np.testing.assert_allclose(design.run.curve[1].centres, [[112.5, 210], [320, 125]], atol=3)
    reported = design.measured
    assert "Measured" in design.measured_text.text()
    with qtbot.waitSignal(lab.anchor_config_applied, timeout=10000):
        qtbot.mouseClick(design.apply_button, Qt.MouseButton.LeftButton)
    stats = lab.stats
    qtbot.mouseClick(stats.folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stats.folder_stats is not None, timeout=60000)
    measured = stats.folder_stats
    assert len(measured.best_iou) == 6
    assert measured.mean_iou == reported.mean_iou
    assert measured.recall(lab.label_config) == reported.recall(lab.label_config)
    assert f"mean best IoU: {reported.mean_iou:.3f}" in stats.folder_text.text()
    assert f"mean best IoU {reported.mean_iou:.3f}" in design.measured_text.text()
    # ... and this image's own statistics agree with the folder's first two boxes.
    np.testing.assert_allclose(lab.labels.gt_best_iou.numpy(), measured.best_iou[:2], rtol=1e-6)


def test_a_pinned_anchor_stays_the_same_anchor_across_an_anchor_set_change(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.faster_rcnn())
    vp = lab.canvas.viewport()
    # Anchor 5 = cell (row 1, col 2) of SPARSE, (224, 96, 288, 160) in image pixels.
    qtbot.mouseClick(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 288.5, 130)
    )
    inspector = lab.inspector
    assert inspector.current == 5 and inspector.pinned
    box = tuple(lab.anchors[5])
    # A set with sizes (100, 160): 2 anchors per cell; the same cell and size 160 (index 1)
    # is anchor (1 * 3 + 2) * 2 + 1 = 11 -- not anchor 5, which is now cell (0, 2), size 160.
    lab.set_configs(
        AnchorConfig(sizes=(100.0, 160.0), aspect_ratios=(1.0,), stride=320), lab.label_config
    )
    assert inspector.current == 11 and inspector.pinned
    assert tuple(lab.anchors[11]) == box
    assert "Anchor 11" in inspector.text.text() and "cell (row 1, col 2)" in inspector.text.text()
    # A set without a 160 anchor: unpinned, never silently another anchor.
    lab.set_configs(
        AnchorConfig(sizes=(100.0,), aspect_ratios=(1.0,), stride=320), lab.label_config
    )
    assert inspector.current is None and not inspector.pinned


def test_inspector_names_boxes_as_the_boxes_list_shows_them(qtbot, lab):
    lab.set_configs(SPARSE, LabelConfig.guide())
    doc = lab.document
    doc.insert_boxes([Box(10, 10, 20, 20, "dog")])  # row 2 of the Boxes list
    doc.replace_boxes({0: Box(100, 100, 160, 160, "cat")})
    names = lab.gt_names()
    assert names == ["box 1 (cat)", "box 2 (dog)"]
    table = lab.inspector.gt_table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == names
    # Clicking the row of "box 2 (dog)" selects that box of the document.
    rect = table.visualItemRect(table.item(1, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert doc.selection == [1]
    assert "<b>box 2 (dog)</b>" in lab.inspector.gt_title.text()
    lab.inspector.set_anchor(4)  # (hovering is tested above) anchor 4, matched to box 1
    assert "matched GT: box 1 (cat)" in lab.inspector.text.text()
    assert "with box 1 (cat)" in lab.inspector.text.text()
    assert lab.inspector.ious.item(1, 0).text() == "box 2 (dog)"


def test_sizes_on_two_levels_are_typed_drawn_and_inspected(qtbot, lab):
    panel = lab.settings_panel
    panel.sizes.selectAll()
    qtbot.keyClicks(panel.sizes, "16@8, 32@8, 64")
    qtbot.keyClick(panel.sizes, Qt.Key.Key_Return)
    assert lab.anchor_config == AnchorConfig(sizes=(16.0, 32.0, 64.0), size_strides=(8, 8, 16))
    # 800x600 input frame: stride 8 gives 75 x 100 cells of 6 anchors, stride 16 38 x 50 of 3.
    assert len(lab.anchors) == 75 * 100 * 6 + 38 * 50 * 3
    assert panel.sizes.text() == "16@8, 32@8, 64"
    # Two sparse levels in the input frame: 80 px at stride 160 (4 x 5 cells: anchors 0-19),
    # 160 px at stride 320 (2 x 3 cells: anchors 20-25). Anchor 24 = cell (1, 1) of the
    # stride-320 grid = (240, 240, 400, 400) there, (96, 96, 160, 160) in image pixels.
    two = AnchorConfig(
        sizes=(80.0, 160.0), aspect_ratios=(1.0,), size_strides=(160, 320), stride=320
    )
    lab.set_configs(two, LabelConfig.faster_rcnn())
    assert len(lab.anchors) == 26 and tuple(lab.anchors[24]) == (96.0, 96.0, 160.0, 160.0)
    vp = lab.canvas.viewport()
    qtbot.mouseClick(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(lab, 128, 96.5)
    )
    inspector = lab.inspector
    assert inspector.current == 24 and inspector.pinned
    text = inspector.text.text()
    assert "Anchor 24" in text and "cell (row 1, col 1) of the stride-320 grid" in text
    assert "foreground: IoU 0.879 with box 1 (no class)" in text
    # The same anchor in the one-level SPARSE set (160 px at stride 320) is anchor 4.
    lab.set_configs(SPARSE, lab.label_config)
    assert inspector.current == 4 and inspector.pinned
