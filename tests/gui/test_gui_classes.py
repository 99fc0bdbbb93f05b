"""The Classes screen shows each class's join code and rotates it (issue 16, item 2)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


def test_the_classes_screen_shows_the_class_code_and_new_code_replaces_it(qtbot, tmp_path, monkeypatch):
    from p2p_attendance.gui.classes import ClassesController
    from p2p_attendance.roster.join_codes import class_join_code
    from p2p_attendance.roster.store import ClassRoster, save_class

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    save_class(ClassRoster("Physics 1"))
    code = class_join_code("Physics 1")
    classes = ClassesController()
    qtbot.addWidget(classes.view)
    classes.select_class("Physics 1")
    assert classes.view.code_label.text() == code and classes.view.new_code_button.isEnabled()
    new = classes.rotate_code(ask=False)
    assert new != code and class_join_code("Physics 1") == new and classes.view.code_label.text() == new


def test_a_class_or_student_name_with_control_characters_is_refused_with_one_message(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QApplication, QMessageBox

    from p2p_attendance.gui.classes import ClassesController
    from p2p_attendance.roster.store import ClassRoster, EnrolledStudent, list_classes, load_class, save_class

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    save_class(ClassRoster("Physics 1", [EnrolledStudent("ada", "Ada")]))
    classes = ClassesController()
    qtbot.addWidget(classes.view)
    classes.new_class("Bio\x1b[2J")  # typed or pasted into the New class dialog
    classes.select_class("Physics 1")
    classes.rename("ada", "Ada\u202egnp.exe")  # a bidi override: reads as something else
    assert [c.name for c in list_classes()] == ["Physics 1"] and load_class("Physics 1").student("ada").name == "Ada"
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert sorted(box.text() for box in boxes) == [
        "The class name contains control or invisible characters ('Bio?[2J'): use another name",
        "The student's name contains control or invisible characters ('Ada?gnp.exe'): use another name",
    ]
    for box in boxes:
        box.close()
