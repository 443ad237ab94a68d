"""The Proposals layer and panel: pure helpers with hand-computed values, then the real main
window with a real (tiny, randomly initialised) RPNModel, real mouse clicks on the table and the
canvas, accept + one Ctrl+Z, a bad weights file, stale runs and Selective Search.

The model is a genuine :class:`rpn_core.rpn.model.RPNModel` built with a small input size
(shorter side 96) so a forward pass takes milliseconds; no test replaces it with a fake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from app_testing import drag_image, make_image, show_zoom, skip_label_prompt, view_pos
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QGraphicsScene

from app.proposals.layer import (
    N_BINS,
    VIRIDIS,
    ProposalsLayer,
    proposal_at,
    ramp_colour,
    rank_bins,
    score_bins,
)
from app.proposals.panel import AUTO_RUN_KEY
from app.shell.main_window import MainWindow

TIMEOUT = 60_000  # ms: the first run imports torch in the background on a shared 2-core box


# -- pure helpers -------------------------------------------------------------------------------
def test_score_bins_hand_computed():
    scores = [0.0, 0.124, 0.125, 0.5, 0.999, 1.0, math.nan, 1.5, -1.0]
    # floor(s * 8): 0, 0.992 -> 0, 1.0 -> 1, 4, 7.992 -> 7, 8 -> clipped 7; NaN -> 0;
    # 1.5 -> clipped to 1 -> 7; -1 -> clipped to 0 -> 0.
    assert score_bins(np.array(scores)).tolist() == [0, 0, 1, 4, 7, 7, 0, 7, 0]


def test_rank_bins_hand_computed():
    # 8 bins over 16 ranks: two per bin, best first
    assert rank_bins(16).tolist() == [7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0]
    # 3 ranks: floor(i * 8 / 3) = 0, 2, 5 -> bins 7, 5, 2
    assert rank_bins(3).tolist() == [7, 5, 2]
    assert rank_bins(1).tolist() == [7] and rank_bins(0).tolist() == []


def _render(scene):
    image = QImage(100, 100, QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    scene.render(painter)
    painter.end()
    return image


def _blended(k):
    r, g, b, a = ramp_colour((k + 0.5) / N_BINS)
    return tuple(round(v * a / 255) for v in (r, g, b))


def _close(colour, want):
    return all(abs(c - w) <= 3 for c, w in zip(colour.getRgb()[:3], want, strict=True))


def test_rank_colouring_spreads_near_equal_scores_and_score_mode_does_not(qtbot):
    scene = QGraphicsScene(0, 0, 100, 100)
    layer = ProposalsLayer()
    scene.addItem(layer)
    # Two disjoint proposals with the near-equal scores of a trained RPN.
    layer.set_proposals(np.array([[10.0, 10.0, 40.0, 40.0], [60.0, 60.0, 90.0, 90.0]]),
                        np.array([0.998, 0.981]))  # fmt: skip
    assert layer.colour_by == "rank"
    image = _render(scene)
    assert _close(image.pixelColor(25, 10), _blended(7))  # rank 1: top bin
    assert _close(image.pixelColor(75, 60), _blended(3))  # rank 2 of 2: floor(1 * 8 / 2) = 4
    layer.set_colour_by("score")
    image = _render(scene)
    assert _close(image.pixelColor(25, 10), _blended(7))
    assert _close(image.pixelColor(75, 60), _blended(7))  # 0.981 * 8 = 7.8: the same bin
    with pytest.raises(ValueError, match="colour_by"):
        layer.set_colour_by("area")


def test_ramp_colour_hand_computed():
    # t = 0: first viridis stop, alpha 255 * 0.25 = 63.75 -> 64.
    assert ramp_colour(0.0) == (*VIRIDIS[0], 64)
    # t = 1: last stop, fully opaque.
    assert ramp_colour(1.0) == (0xFD, 0xE7, 0x25, 255)
    # t = 1/16: halfway between stops 0 (44 01 54) and 1 (48 28 78):
    # r = (68 + 72) / 2 = 70, g = (1 + 40) / 2 = 20.5 -> 20 (round half to even),
    # b = (84 + 120) / 2 = 102; alpha = 255 * (0.25 + 0.75 / 16) = 75.70 -> 76.
    assert ramp_colour(1 / 16) == (70, 20, 102, 76)
    assert ramp_colour(math.nan) == ramp_colour(0.0)


def test_proposal_at_hits_outlines_only_smallest_first():
    boxes = np.array([[10, 10, 50, 50], [20, 20, 30, 30]], dtype=float)
    assert proposal_at(boxes, 10, 30, tolerance=2) == 0  # on box 0's left edge
    assert proposal_at(boxes, 49, 49, tolerance=2) == 0  # 1 px from box 0's corner
    assert proposal_at(boxes, 20, 25, tolerance=2) == 1  # box 1's edge, inside box 0
    assert proposal_at(boxes, 25, 25, tolerance=2) is None  # inside box 1, on no outline
    assert proposal_at(boxes, 100, 100, tolerance=2) is None
    # Two boxes sharing an edge: the smaller one wins.
    boxes = np.array([[0, 0, 100, 100], [0, 0, 10, 100]], dtype=float)
    assert proposal_at(boxes, 0, 50, tolerance=1) == 1


def test_table_model_shows_whole_pixels_and_sorts_on_exact_values(qtbot):
    from app.proposals.table import COLUMNS, SORT_ROLE, ProposalsTableModel, make_proxy

    model = ProposalsTableModel()
    boxes = np.array([[10.4, 20.6, 50.0, 40.0], [0.0, 0.0, 9.0, 100.0], [1.0, 2.0, 3.0, 4.0]])
    model.set_proposals(boxes, np.array([0.9, 0.85, 0.1]))
    display = [[model.data(model.index(r, c)) for c in range(len(COLUMNS))] for r in range(3)]
    # w = 50 - 10.4 = 39.6 -> "40", h = 40 - 20.6 = 19.4 -> "19".
    assert display[0] == ["1", "0.900", "10", "21", "50", "40", "40", "19"]
    assert display[1][:2] == ["2", "0.850"]
    assert model.data(model.index(0, 6), SORT_ROLE) == pytest.approx(39.6)
    proxy = make_proxy(model)
    proxy.sort(COLUMNS.index("w"), Qt.SortOrder.AscendingOrder)  # widths 39.6, 9, 2
    assert [proxy.mapToSource(proxy.index(r, 0)).row() for r in range(3)] == [2, 1, 0]
    model.set_proposals(boxes[:1], np.array([0.5]), scores_are_ranks=True)
    assert model.data(model.index(0, 1)) == "-"  # Selective Search has no scores


def test_layer_paints_in_batches_with_the_score_colour(qtbot):
    scene = QGraphicsScene(0, 0, 100, 100)
    layer = ProposalsLayer()
    scene.addItem(layer)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 60, size=(300, 2))
    boxes = np.column_stack([xy, xy + rng.uniform(5, 30, size=(300, 2))])
    layer.set_proposals(boxes, rng.uniform(0, 1, 300))
    assert layer.batch_count <= N_BINS  # 300 proposals, at most 8 drawPath calls
    layer.set_colour_by("score")

    # One proposal with score 1.0: its outline is drawn in the top bin's colour.
    layer.set_proposals(np.array([[20.0, 20.0, 80.0, 80.0]]), np.array([1.0]))
    image = QImage(100, 100, QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    scene.render(painter)
    painter.end()
    expected = ramp_colour((N_BINS - 0.5) / N_BINS)  # top bin centre, alpha 0.953
    edge = image.pixelColor(50, 20)
    for got, want in zip((edge.red(), edge.green(), edge.blue()), expected[:3], strict=True):
        assert abs(got - want * expected[3] / 255) <= 3  # blended over black
    assert image.pixelColor(50, 50) == QColor(0, 0, 0)  # outlines only, no fill


# -- the panel in the real main window ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    torch = pytest.importorskip("torch")
    from rpn_core.rpn.config import RPNConfig
    from rpn_core.rpn.model import RPNModel

    torch.manual_seed(0)
    return RPNModel(RPNConfig(min_side=96, max_side=160), device="cpu")


@pytest.fixture
def window(qtbot, app_settings, tiny_model, tmp_path):
    make_image(tmp_path / "imgs" / "a.png", 0, (320, 240))
    make_image(tmp_path / "imgs" / "b.png", 1, (200, 300))
    app_settings.save_format = "voc"
    w = MainWindow(settings=app_settings)
    qtbot.addWidget(w)
    w.model_loader.set_model(tiny_model)
    skip_label_prompt(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    assert w.proposals_panel.shutdown(TIMEOUT)


def open_and_wait(qtbot, window, path) -> None:
    panel = window.proposals_panel
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT):
        assert window.open_paths([str(path)])
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=TIMEOUT)


def click_row(qtbot, table, row, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    index = table.model().index(row, 1)
    table.scrollTo(index)
    centre = table.visualRect(index).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, centre)


def test_auto_run_lists_proposals_and_controls_reselect_without_backbone(qtbot, window, tmp_path):
    from rpn_core.rpn.selection import select_proposals

    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    run = panel._runs["rpn"]
    assert run.raw.image_size == (240, 320)
    expected = select_proposals(run.raw, top_n=300, nms_iou=0.7)
    np.testing.assert_allclose(panel.layer.boxes, expected.boxes)
    assert panel.table_model.rowCount() == len(expected.boxes) > 0
    assert np.all(np.diff(panel.layer.scores) <= 0)  # descending: row i is rank i + 1

    spin = panel.ui.top_n_spin
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "7")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert len(panel.layer.boxes) == panel.table_model.rowCount() == 7
    np.testing.assert_allclose(panel.layer.boxes, expected.boxes[:7])
    assert panel._runs["rpn"] is run and not panel.runner.is_busy()  # no new backbone run

    panel.ui.nms_spin.setValue(0.3)
    again = select_proposals(run.raw, top_n=7, nms_iou=0.3)
    np.testing.assert_allclose(panel.layer.boxes, again.boxes)
    assert panel._runs["rpn"] is run


def test_table_and_canvas_selection_stay_in_sync(qtbot, window, tmp_path):
    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    table = panel.ui.table
    click_row(qtbot, table, 2)
    assert panel.layer.selected == (2,)

    # Sort by score ascending with a real click on the header: view row 0 = lowest score.
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(1) + header.sectionSize(1) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    if table.horizontalHeader().sortIndicatorOrder() != Qt.SortOrder.AscendingOrder:
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    click_row(qtbot, table, 0)
    (chosen,) = panel.layer.selected
    assert panel.layer.scores[chosen] == panel.layer.scores.min()

    # Canvas -> table: click on a point of some proposal's outline that no smaller proposal's
    # outline passes near (tolerance: 4 screen px = 2 image px at zoom 2).
    canvas = window.canvas
    show_zoom(canvas, 2.0, (160, 120))
    boxes = panel.layer.boxes
    target = None
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        for t in np.linspace(0.1, 0.9, 9):
            for px, py in ((x1 + t * (x2 - x1), y1), (x2, y1 + t * (y2 - y1))):
                visible = canvas.viewport().rect().contains(view_pos(canvas, px, py))
                if visible and proposal_at(boxes, px, py, tolerance=2.0) == i:
                    target = (i, px, py)
                    break
            if target:
                break
        if target:
            break
    assert target is not None
    i, px, py = target
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(canvas, px, py))
    assert panel.selected_rows() == [i]
    assert panel.layer.selected == (i,)
    assert window.document.boxes == []  # the click selected a proposal, it drew nothing


def test_accept_selected_and_all_are_one_undo_step_each(qtbot, window, tmp_path):
    panel = window.proposals_panel
    doc = window.document
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    table = panel.ui.table
    click_row(qtbot, table, 0)
    click_row(qtbot, table, 3, Qt.KeyboardModifier.ControlModifier)
    qtbot.mouseClick(panel.ui.accept_selected_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose([b.xyxy for b in doc.boxes], panel.layer.boxes[[0, 3]], atol=1e-4)
    assert doc.undo_stack.count() == 1
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.boxes == []

    # "Accept all above threshold": the threshold set to the 5th best score keeps >= 5.
    threshold = round(float(panel.layer.scores[4]) - 0.0005, 3)
    panel.ui.threshold_spin.setValue(threshold)
    shown = int((panel.layer.scores >= threshold).sum())
    assert shown >= 5
    qtbot.mouseClick(panel.ui.accept_all_button, Qt.MouseButton.LeftButton)
    assert len(doc.boxes) == shown
    assert doc.undo_stack.index() == 1  # one step on top of the undone one
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.boxes == []

    # Return in the list accepts the selected proposal.
    click_row(qtbot, table, 1)
    qtbot.keyClick(table, Qt.Key.Key_Return)
    np.testing.assert_allclose([b.xyxy for b in doc.boxes], panel.layer.boxes[[1]], atol=1e-4)


def test_bad_weights_file_gives_a_message_and_annotation_still_works(qtbot, window, tmp_path):
    panel = window.proposals_panel
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x80\x04\x95pickle, not safetensors")
    panel.set_weights(str(bad))
    with qtbot.waitSignal(panel.runner.failed, timeout=TIMEOUT):
        assert window.open_paths([str(tmp_path / "imgs" / "a.png")])
    text = panel.ui.status_label.text()
    assert "Could not load the RPN weights" in text and str(bad) in text
    assert panel.layer.boxes.shape == (0, 4)

    canvas = window.canvas
    show_zoom(canvas, 1.0, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    drag_image(qtbot, canvas, (40, 30), (140, 110))
    np.testing.assert_allclose(
        [b.xyxy for b in window.document.boxes], [(40, 30, 140, 110)], atol=1
    )


def test_new_image_supersedes_a_stale_run(qtbot, window, tmp_path):
    panel = window.proposals_panel
    panel.ui.auto_box.setChecked(False)
    assert window.open_paths([str(tmp_path / "imgs")])  # a.png shown, nothing runs
    tokens: list[int] = []
    panel.runner.finished.connect(lambda run: tokens.append(run.token))
    panel.ui.auto_box.setChecked(True)
    # Run on a.png and switch to b.png in the same event-loop turn: a.png's run is still the
    # runner's current one when b.png's run is submitted, whatever its thread has done.
    panel.run()
    stale = panel.runner.current
    window.workspace.go_to(1)
    assert stale.is_cancelled and panel.runner.superseded == 1
    qtbot.waitUntil(lambda: "rpn" in panel._runs, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=TIMEOUT)
    assert tokens == [panel._token]  # only b.png's result reached the panel
    assert panel._runs["rpn"].raw.image_size == (300, 200)
    assert np.all(panel.layer.boxes[:, 2] <= 200) and np.all(panel.layer.boxes[:, 3] <= 300)


def test_selective_search_side_by_side_with_time_and_recall(qtbot, window, tmp_path):
    from rpn_core.rpn.proposals import best_iou_per_gt, recall_at_iou

    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT):
        panel.ui.set_method("selective-search")
    qtbot.waitUntil(lambda: not panel.runner.is_busy(), timeout=TIMEOUT)
    assert panel.table_model.rowCount() == len(panel.layer.boxes) > 0
    assert not panel.ui.nms_spin.isEnabled()  # SS has no scores to threshold or NMS

    ss_boxes = panel.layer.boxes.copy()
    from app.state.undo import AddBoxesCommand
    from rpn_core.annotation.data import Box

    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(*map(float, ss_boxes[0]))]))
    summary = panel.ui.summary_label.text().splitlines()
    assert summary[0].startswith("RPN: ") and summary[1].startswith("Selective Search: ")
    # SS's own first box is a GT box now: its recall is 1.0 (IoU 1 with itself).
    assert summary[1].endswith("recall@300 = 1.00 (1 GT, IoU 0.5)")
    panel.ui.set_method("rpn")
    gt = doc.boxes_array()
    rpn_recall = recall_at_iou(best_iou_per_gt(panel.layer.boxes, gt), 0.5)
    every = recall_at_iou(best_iou_per_gt(panel._runs["rpn"].raw.boxes, gt), 0.5)
    rpn_line = panel.ui.summary_label.text().splitlines()[0]
    assert rpn_line.endswith(
        f"recall@300 = {rpn_recall:.2f} (1 GT, IoU 0.5); every anchor: {every:.2f}"
    )
    assert every >= rpn_recall  # every anchor's box includes the shown ones


def test_arrows_follow_the_anchors_of_the_top_proposals(qtbot, window, tmp_path):
    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    qtbot.mouseClick(
        panel.ui.arrows_box,
        Qt.MouseButton.LeftButton,
        pos=QPoint(8, panel.ui.arrows_box.height() // 2),
    )
    assert panel.layer.show_arrows()
    from rpn_core.rpn.selection import select_proposals

    raw = panel._runs["rpn"].raw
    sel = select_proposals(raw)
    np.testing.assert_allclose(panel.layer._anchors, raw.anchors[sel.anchor_index])


def test_colour_choice_reaches_the_layer_and_legend(qtbot, window, tmp_path):
    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    combo = panel.ui.colour_combo
    assert panel.layer.colour_by == "rank" and panel.ui.legend_high.text() == "#1"
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # the next item: score
    assert panel.layer.colour_by == "score" and panel.ui.legend_low.text() == "score 0"
    panel.ui.set_method("selective-search")  # no scores: back to rank, choice disabled
    assert panel.layer.colour_by == "rank" and not combo.isEnabled()


def test_model_loads_lazily_from_a_file_with_a_visible_state(qtbot, window, tmp_path, tiny_model):
    from rpn_core.rpn.loading import save_weights

    path = tmp_path / "tiny.safetensors"
    save_weights(tiny_model, path)
    panel = window.proposals_panel
    messages: list[str] = []
    panel.status_message.connect(messages.append)
    panel.set_weights(str(path))
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    assert any(m.startswith("Loading model") for m in messages)
    assert window.model_loader.state.value == "Model ready"
    assert panel.table_model.rowCount() > 0


def test_auto_run_choice_is_remembered(qtbot, window, app_settings):
    panel = window.proposals_panel
    qtbot.mouseClick(
        panel.ui.auto_box, Qt.MouseButton.LeftButton, pos=QPoint(8, panel.ui.auto_box.height() // 2)
    )
    assert app_settings.q.value(AUTO_RUN_KEY, type=bool) is False


def test_a_replaced_model_reruns_the_proposals(qtbot, window, tmp_path, tiny_model):
    # What fine-tuning does when it finishes: install the new model on the shared loader.
    panel = window.proposals_panel
    open_and_wait(qtbot, window, tmp_path / "imgs" / "a.png")
    before = panel._runs["rpn"]
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT):
        window.model_loader.set_model(tiny_model)
    assert panel._runs["rpn"] is not before
    assert panel.table_model.rowCount() > 0


def test_rpn_job_maps_a_downscaled_display_copy_back_to_original_pixels(tiny_model):
    # A huge image is shown (and run) as a copy downscaled by ``scale``; results must come
    # back in original pixels: the same network output, multiplied by 1 / scale = 2.
    from rpn_core.rpn.jobs import rpn_job

    pixels = np.random.default_rng(1).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)

    def finish(gen):
        steps = []
        try:
            while True:
                steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value

    steps, same = finish(rpn_job(lambda: tiny_model, pixels, token=1))
    assert steps == ["Running the backbone...", "Scoring anchors..."]
    _, half = finish(
        rpn_job(lambda: tiny_model, pixels, token=2, scale=0.5, original_size=(240, 320))
    )
    assert half.token == 2 and half.raw.image_size == (240, 320)
    np.testing.assert_allclose(half.raw.boxes, same.raw.boxes * 2, rtol=1e-6)
    np.testing.assert_allclose(half.raw.anchors, same.raw.anchors * 2, rtol=1e-6)
    np.testing.assert_array_equal(half.raw.scores, same.raw.scores)


def test_every_anchor_recall_golden_and_recomputes_only_edited_boxes():
    """Two refined boxes; GT A overlaps the first at IoU 50 / 150 = 1/3 (under 0.5), GT B
    equals the second (IoU 1): recall 0.5. Moving A onto the first box makes it 1.0; the
    cache then holds A's old and new places and B, computed once each."""
    from types import SimpleNamespace

    from rpn_core.rpn.jobs import ProposalRun

    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    run = ProposalRun("rpn", token=1, seconds=0.0, raw=SimpleNamespace(boxes=boxes))
    a = [5.0, 0.0, 15.0, 10.0]  # overlap 5 x 10 = 50; union 100 + 100 - 50 = 150
    b = [20.0, 20.0, 30.0, 30.0]
    assert run.every_anchor_recall(np.array([a, b])) == 0.5
    assert run.every_anchor_recall(np.array([a, b]), iou=0.3) == 1.0  # 1/3 >= 0.3
    assert run._best_iou[tuple(a)] == pytest.approx(1 / 3)
    moved = [0.0, 0.0, 10.0, 10.0]
    assert run.every_anchor_recall(np.array([moved, b])) == 1.0
    assert set(run._best_iou) == {tuple(a), tuple(b), tuple(moved)}
