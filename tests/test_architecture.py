"""The engine never imports Qt: it must import and run with PySide6 made unimportable."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'superqt', 'pyqtgraph', 'app'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, anil_engine
for m in pkgutil.walk_packages(anil_engine.__path__, 'anil_engine.'):
    if not m.name.endswith('__main__'):
        importlib.import_module(m.name)
print('ok')
"""


def test_engine_imports_without_qt():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
