"""House rules checked by machine: rpn_core is Qt-free and cheap to import."""

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import rpn_core, rpn_core.cli.main
loaded_torch_early = 'torch' in sys.modules
for m in pkgutil.walk_packages(rpn_core.__path__, 'rpn_core.'):
    importlib.import_module(m.name)
qt = sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'))
print('QT=' + ','.join(qt))
print('TORCH_EARLY=' + str(loaded_torch_early))
"""


def test_rpn_core_loads_no_qt_in_a_fresh_interpreter():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert "QT=\n" in out.stdout, out.stdout
    # The CLI's --help must not pay for torch's 3-4 s import.
    assert "TORCH_EARLY=False" in out.stdout, out.stdout
