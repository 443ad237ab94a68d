"""The main window: a thin shell that builds the canvas, panels and actions and wires them.

It creates the shared state once -- ``window.document``
(:class:`app.state.qdocument.AnnotationDocument`, with ``undo_stack``), ``window.app_state``
(:class:`app.state.app_state.AppStateModel`: active model, lab configs, proposal selection)
and ``window.model_loader`` -- and hands it to each feature's constructor; features never
look each other up on the window: where one feature's event matters to another, the shell
connects the two here. Other attributes: ``window.canvas`` (:class:`app.canvas.canvas.Canvas`),
``window.workspace`` (:class:`app.annotate.workspace.Workspace`), ``window.actions``
(:class:`app.shell.actions.Actions`), ``window.menus`` (name -> QMenu: file, edit, view, go, help),
``window.message_bar``, ``window.display_options``
(:class:`app.annotate.view_options.DisplayOptions`:
show boxes / labels, brightness and contrast) and ``window.settings``. Behaviour lives in those
objects; this class only forwards user intent to them (menus and tool bar: :mod:`app.shell.menus`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QScrollArea,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

import resources
from app.anchor_lab.controller import install_anchor_lab
from app.annotate.box_list import BoxListPanel
from app.annotate.class_panel import ClassPanel
from app.annotate.edit_controller import EditController
from app.annotate.file_list import FileListPanel
from app.annotate.label_prompt import LabelAsker
from app.annotate.view_options import DisplayOptions
from app.annotate.workspace import Workspace
from app.canvas.box_item import set_class_order
from app.canvas.canvas import Canvas
from app.common.icons import icon
from app.common.message_bar import MessageBar
from app.common.settings import AppSettings
from app.common.workers import ModelLoader, ModelState
from app.proposals.panel import ProposalsPanel
from app.shell import dialogs
from app.shell.actions import Actions, create_actions
from app.shell.layout import arrange_docks, hide_stale_tab_bars
from app.shell.menus import build_menus, build_toolbar
from app.state.app_state import AppStateModel
from app.state.qdocument import AnnotationDocument
from app.training.panel import TrainPanel
from rpn_core.app_state import AppState
from rpn_core.rpn.config import embedded_config

__all__ = ["MainWindow"]


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else AppSettings()
        self.document = AnnotationDocument(self)
        embedded = embedded_config(resources.embedded_sidecar())
        self.app_state = AppStateModel(AppState.for_model(embedded), self)
        self.model_loader = ModelLoader(parent=self)  # the active model, loaded lazily
        self.model_loader.state_changed.connect(self._on_model_state)
        self.workspace = Workspace(self.document, self.settings, self)
        classes = self.workspace.classes  # colours by class position: before any panel draws
        classes.classes_changed.connect(lambda: set_class_order(classes.names))
        self.edits = EditController(self.document, self.workspace, self)
        self.workspace.confirm_discard = lambda paths: dialogs.confirm_discard(self, paths)
        self._quit_without_weights = False  # the user answered "Discard"/"Save" when quitting
        self.weights_prompt = None
        self.edits.confirm_rename = lambda old, new, plans: dialogs.confirm_rename(
            self, old, new, plans
        )
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self._setup_central()
        self._setup_actions()
        self.menus = build_menus(self)
        self.display_options = DisplayOptions(self)  # View ▸ Show Boxes / Labels, brightness
        self.toolbar = build_toolbar(self)
        self._setup_docks()
        self._setup_statusbar()
        self._setup_proposals()
        self._setup_anchor_lab()
        self._setup_train_panel()
        self._setup_layers()
        self._connect()
        arrange_docks(self)
        self._restore_state()
        self.layers.sync_docks()
        self._update_title()

    # -- set-up --------------------------------------------------------------------------------
    def _setup_central(self) -> None:
        self.canvas = Canvas(self.document, self)
        self.canvas.create_sticky = self.settings.create_sticky
        self.label_asker = LabelAsker(self.workspace.classes, self.settings, self)
        self.canvas.ask_label = self.label_asker.ask  # the label prompt after each drawn box
        self.message_bar = MessageBar(self)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

    def _setup_actions(self) -> None:
        self.actions: Actions = create_actions(self, self.document.undo_stack)
        a = self.actions
        a.autosave.setChecked(self.settings.autosave)
        a.keep_previous.setChecked(self.settings.keep_previous)
        a.recursive.setChecked(self.settings.recursive)
        a.save_formats[self.settings.save_format].setChecked(True)
        a.voc_conventions[self.settings.voc_convention].setChecked(True)

    def _dock(
        self,
        title: str,
        name: str,
        widget: QWidget,
        area: Qt.DockWidgetArea,
        *,
        scroll: bool = False,
    ) -> QDockWidget:
        """A dock for ``widget``, listed in the View menu. Wide tool panels (and ``scroll``
        ones, whose height must never force the window's) scroll rather than squeeze."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        if scroll or widget.minimumSizeHint().width() > 260:
            area_widget = QScrollArea()
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QFrame.Shape.NoFrame)
            area_widget.setWidget(widget)
            widget = area_widget
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.menus["view"].addAction(dock.toggleViewAction())
        return dock

    def _setup_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.file_list = FileListPanel(self)
        self.class_panel = ClassPanel(self.workspace.classes, self)
        self.box_list = BoxListPanel(self.document, self)
        self.undo_view = QUndoView(self.document.undo_stack, self)
        self.undo_view.setEmptyLabel("<opened>")
        self.docks = {
            "files": self._dock("Files", "files_dock", self.file_list, left),
            "classes": self._dock("Classes", "classes_dock", self.class_panel, right),
            "boxes": self._dock("Boxes", "boxes_dock", self.box_list, right),
            "history": self._dock("History", "history_dock", self.undo_view, right),
        }
        self.tabifyDockWidget(self.docks["boxes"], self.docks["history"])
        self.docks["boxes"].raise_()

    def _setup_proposals(self) -> None:
        """The embedded RPN's proposals: layer on the canvas, dock with controls and list."""
        self.proposals_panel = ProposalsPanel(
            self.document, self.canvas, self.app_state, self.model_loader, self,
            qsettings=self.settings.q,
        )  # fmt: skip
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.docks["proposals"] = self._dock(
            "Proposals", "proposals_dock", self.proposals_panel, left
        )
        self.proposals_panel.status_message.connect(
            lambda text: self.statusBar().showMessage(text, 8000)
        )

    def _setup_anchor_lab(self) -> None:
        """Anchors coloured by their training label over the image, with the anchor lab's
        docks (settings, statistics, inspector, design); torch loads in the background."""
        lab = install_anchor_lab(self.document, self.canvas, self.app_state, self.settings.q, self)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.anchor_docks = [
            self._dock(title, f"anchor_lab_{title.lower().replace(' ', '_')}", panel, right,
                       scroll=True)
            for title, panel in lab.panels
        ]  # fmt: skip
        for dock in self.anchor_docks[1:]:  # one tab group: the window keeps its height
            self.tabifyDockWidget(self.anchor_docks[0], dock)
        self.anchor_docks[0].raise_()
        lab.notice.connect(lambda text: self.message_bar.show_message("info", text))
        self.anchor_lab = lab

    def _setup_train_panel(self) -> None:
        """Fine-tuning dock, tabbed with Proposals, and the Model menu: the one set of
        weights actions, also behind the Proposals dock's Weights... / Embedded buttons, so
        every way in validates a file the same way. torch loads only on Start."""
        panel = TrainPanel(self.workspace, self.document, self.app_state, self.model_loader, self)
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.docks["train"] = self._dock("Train", "train_dock", panel, left)
        self.tabifyDockWidget(self.docks["proposals"], self.docks["train"])
        self.docks["proposals"].raise_()
        menu = QMenu("&Model", self)
        self.menuBar().insertMenu(self.menus["help"].menuAction(), menu)
        self.menus["model"] = menu
        panel.weights_actions = {}
        for key, text, slot in (
            ("load_weights", "&Load RPN Weights...", panel.ask_load),
            ("save_weights", "&Save RPN Weights...", panel.ask_save),
            ("reset_weights", "&Reset to Embedded Weights", panel.reset_weights),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            menu.addAction(action)
            panel.weights_actions[key] = action
        proposals = self.proposals_panel
        proposals.load_weights_requested.connect(panel.weights_actions["load_weights"].trigger)
        proposals.reset_weights_requested.connect(panel.weights_actions["reset_weights"].trigger)
        panel.load_failed.connect(lambda text: proposals.show_status(text, error=True))
        self.weights_label = QLabel("Weights: embedded")
        self.statusBar().addPermanentWidget(self.weights_label)
        panel.weights_changed.connect(lambda text: self.weights_label.setText(f"Weights: {text}"))
        panel.status_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.train_panel = panel

    def _on_model_state(self, state: str, _message: str) -> None:
        """A model became active: it is the app state's model from now on."""
        model = self.model_loader.model_if_ready()
        if state == ModelState.READY.value and model is not None:
            self.app_state.set_model(model.config, self.model_loader.name)

    def _setup_layers(self) -> None:
        """Boxes / Anchors / Proposals on and off (View menu, Layers tool bar, Alt+1..3)."""
        from app.shell.layers import install_layers

        self.layers = install_layers(self)

    def _setup_statusbar(self) -> None:
        sb = self.statusBar()
        self.coord_label, self.pixel_label = QLabel(), QLabel()
        self.zoom_label, self.mode_label, self.format_label = QLabel(), QLabel(), QLabel()
        for w in (
            self.mode_label,
            self.coord_label,
            self.pixel_label,
            self.zoom_label,
            self.format_label,
        ):
            w.setMinimumWidth(70)
            sb.addPermanentWidget(w)
        self.mode_label.setText("Edit")
        # The class the next box gets (keys 1-9 pick it; they relabel only boxes you selected).
        self.next_label = QLabel()
        self.next_label.setToolTip(
            "Keys 1-9 choose the class of the next box; they relabel selected boxes too, "
            "but not the box just drawn (click a box to relabel it)"
        )
        sb.insertPermanentWidget(0, self.next_label)

    def _connect(self) -> None:
        self._connect_actions()
        self._connect_views()

    def _connect_actions(self) -> None:
        a, ws, c, e = self.actions, self.workspace, self.canvas, self.edits
        a.open_file.triggered.connect(lambda: dialogs.ask_open_file(self))
        a.open_folder.triggered.connect(lambda: dialogs.ask_open_folder(self))
        a.save.triggered.connect(lambda: ws.save_all())  # triggered(bool) is no argument of it
        a.change_save_dir.triggered.connect(lambda: dialogs.ask_save_dir(self))
        a.autosave.toggled.connect(self._set_autosave)
        a.keep_previous.toggled.connect(lambda on: setattr(self.settings, "keep_previous", on))
        a.recursive.toggled.connect(lambda on: setattr(self.settings, "recursive", on))
        a.quit.triggered.connect(self.close)
        a.create_box.triggered.connect(lambda: c.set_mode("create"))
        a.edit_mode.triggered.connect(lambda: c.set_mode("edit"))
        for action, slot in (
            (a.delete, e.delete_selection),
            (a.duplicate, e.duplicate_selection),
            (a.copy, e.copy_selection),
            (a.paste, e.paste),
            (a.copy_previous, e.copy_previous),
            (a.select_all, e.select_all),
            (a.toggle_difficult, e.toggle_difficult),
            (a.toggle_verified, e.toggle_verified),
            (a.zoom_in, c.zoom_in),
            (a.zoom_out, c.zoom_out),
            (a.zoom_fit, c.zoom_fit),
            (a.zoom_actual, c.zoom_actual),
            (a.next_image, self._next),
            (a.prev_image, self._prev),
        ):
            action.triggered.connect(slot)
        a.shortcuts.triggered.connect(lambda: dialogs.show_shortcuts(self))
        a.about.triggered.connect(lambda: dialogs.show_about(self))
        a.messages.triggered.connect(lambda: dialogs.show_messages(self, self.message_bar.messages))
        for n, action in enumerate(a.class_keys, start=1):
            action.triggered.connect(lambda _=False, n=n: e.use_class_key(n))
        for fmt, action in a.save_formats.items():
            action.triggered.connect(lambda _=False, f=fmt: self._set_format(f))
        for conv, action in a.voc_conventions.items():
            action.triggered.connect(lambda _=False, v=conv: self._set_format(None, v))

    def _connect_views(self) -> None:
        ws, doc, c, e = self.workspace, self.document, self.canvas, self.edits
        c.cursor_moved.connect(self._show_cursor)
        c.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        c.mode_changed.connect(lambda m: self.mode_label.setText(m.capitalize()))
        c.verify_requested.connect(e.toggle_verified)
        c.files_dropped.connect(lambda paths: self.open_paths(paths))
        c.box_activated.connect(self.ask_box_class)
        doc.dirty_changed.connect(lambda _d: self._update_title())
        doc.image_changed.connect(self._update_title)
        doc.image_changed.connect(self._update_flags)
        doc.selection_changed.connect(lambda _s: self._update_flags())
        doc.boxes_updated.connect(lambda _s: self._update_flags())
        doc.verified_changed.connect(lambda _v: self._update_flags())
        ws.message.connect(self._show_message)
        ws.images_listed.connect(lambda: self.file_list.set_images(ws.images, ws.root, ws.states))
        ws.state_changed.connect(lambda p: self.file_list.set_state(p, *ws.states[p]))
        ws.current_changed.connect(self.file_list.set_current)
        ws.current_changed.connect(lambda _i: self._update_title())
        ws.store_changed.connect(self._show_format)
        ws.classes.default_changed.connect(lambda name: setattr(c, "default_label", name))
        ws.classes.default_changed.connect(self._show_next_class)
        ws.classes.classes_changed.connect(c.restyle)
        ws.saved.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.busy_notice = dialogs.BusyNotice(self)
        ws.busy.connect(self.busy_notice.show)
        c.box_drawn.connect(e.note_drawn)
        c.box_pressed.connect(e.forget_drawn)
        self.class_panel.set_use_default(self.settings.use_default_label)
        self.class_panel.use_default_toggled.connect(self.label_asker.set_use_default)
        self.label_asker.use_default_changed.connect(self.class_panel.set_use_default)
        self.class_panel.class_added.connect(lambda _name: c.setFocus())
        self._show_next_class(ws.classes.default)
        e.status.connect(lambda text: self.statusBar().showMessage(text, 4000))
        e.message.connect(self._show_message)
        self.file_list.image_activated.connect(ws.go_to)
        self.class_panel.class_chosen.connect(e.relabel_selection)
        self.class_panel.rename_requested.connect(self.rename_class)
        self.class_panel.difficult_toggled.connect(e.set_difficult)
        self.class_panel.verified_toggled.connect(e.set_verified)

    def _show_next_class(self, name: str) -> None:
        self.next_label.setText(f"Next box: {name}" if name else "Next box: (asks)")

    def ask_box_class(self, index: int) -> None:
        """Double-click on a box: choose (or type) its class."""
        current = self.document.boxes[index].label
        name = self.label_asker.relabel(current)  # the label prompt, as after drawing
        if name is not None:
            self.document.select([index])
            self.edits.relabel_selection(name)

    def rename_class(self, old: str, new: str) -> None:
        """Rename a project class in the whole folder (the current image's boxes as one undo
        step, the other images' annotation files on disk, after asking)."""
        error = self.edits.rename_class(old, new)
        if error:
            self._show_message("warning", error)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        QTimer.singleShot(0, lambda: hide_stale_tab_bars(self))

    def _restore_state(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 880)
        if state is not None:
            self.restoreState(state)

    # -- opening -------------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str | Path], *, recursive: bool | None = None) -> bool:
        """Open images and/or folders (``recursive`` defaults to the File menu option)."""
        rec = self.settings.recursive if recursive is None else recursive
        ok = self.workspace.open_paths(paths, recursive=rec)
        if ok:
            for p in paths:
                self.settings.add_recent(p)
        return ok

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    # -- navigation and saving -------------------------------------------------------------------
    def _next(self) -> None:
        if not self.workspace.next_image():
            self.statusBar().showMessage("Last image", 2000)

    def _prev(self) -> None:
        if not self.workspace.prev_image():
            self.statusBar().showMessage("First image", 2000)

    def _set_autosave(self, on: bool) -> None:
        self.settings.autosave = on
        if on:
            self.workspace.autosave_now()

    def _set_format(self, fmt: str | None, convention: str | None = None) -> None:
        self.workspace.set_save_format(fmt or self.settings.save_format, convention)

    # -- feedback --------------------------------------------------------------------------------
    def _show_message(self, level: str, text: str) -> None:
        self.message_bar.show_message(level, text)
        self.statusBar().showMessage(text, 8000)

    def _show_cursor(self, x: float, y: float) -> None:
        w, h = self.document.size
        inside = 0 <= x < w and 0 <= y < h
        self.coord_label.setText(f"x {x:.1f}  y {y:.1f}" if inside else "")
        rgb = self.document.pixel_at(x, y) if inside else None
        self.pixel_label.setText("RGB {} {} {}".format(*rgb) if rgb else "")

    def _show_format(self) -> None:
        store = self.workspace.store
        conv = f" ({self.settings.voc_convention})" if store and store.fmt == "voc" else ""
        self.format_label.setText(f"Save: {store.fmt.upper()}{conv}" if store else "")

    def _update_flags(self) -> None:
        doc = self.document
        sel = doc.selection
        difficult = all(doc.boxes[i].difficult for i in sel) if sel else None
        verified = doc.verified if doc.annotation is not None else None
        self.class_panel.show_flags(difficult, verified)
        self.actions.toggle_verified.setChecked(bool(verified))

    def _update_title(self) -> None:
        ws, doc = self.workspace, self.document
        path = doc.image_path or ws.current_path
        if path is None:
            self.setWindowTitle("RPN Studio")
            return
        star = "*" if doc.dirty else ""
        where = f" [{ws.index + 1}/{len(ws.images)}]" if ws.images else ""
        self.setWindowTitle(f"{star}{path.name}{where} — RPN Studio")

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save what autosave (or the user's unsaved edits) needs; ask before losing any:
        fine-tuned weights first (Save / Discard / Cancel), then unsaved annotations."""
        if not self._weights_may_go():
            event.ignore()
            return
        self.workspace.leave_current()
        if self.settings.autosave:
            self.workspace.save_all(wait=True)
        self.workspace.wait_for_store()  # saves of big files still under way land first
        left = list(self.workspace.unsaved)
        if left and not dialogs.confirm_discard(self, left):
            event.ignore()
            return
        self._quit_without_weights = False
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.workspace.scanner.cancel()
        self.workspace.cache.wait(2000)
        event.accept()

    def _weights_may_go(self) -> bool:
        """True unless fine-tuned weights are unsaved; then ask (without blocking) and close
        again once the user saved or discarded them (Cancel keeps the window open)."""
        panel = getattr(self, "train_panel", None)
        if panel is None or not panel.has_unsaved_weights or self._quit_without_weights:
            return True

        def answered(choice: str) -> None:
            self.weights_prompt = None
            if choice == "discard" or (choice == "save" and panel.ask_save()):
                self._quit_without_weights = True
                self.close()

        if getattr(self, "weights_prompt", None) is None:
            self.weights_prompt = dialogs.ask_unsaved_weights(self, answered)
        return False
