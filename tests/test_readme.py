"README.md is generated from nbs/index.ipynb and must not drift from it."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'])
    assert r.returncode == 0, 'README.md is out of date: run `python tools/readme.py`'

def test_readme_gives_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text
