"""README.md is generated from nbs/index.ipynb and holds the two commands."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, 'tools/readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_readme_holds_exactly_the_two_commands():
    text = (ROOT / 'README.md').read_text()
    block = text.split('```sh', 1)[1].split('```', 1)[0]
    cmds = [l.split('#')[0].strip() for l in block.strip().splitlines()]
    assert cmds == ['python3 tools/dev.py demo', 'python3 tools/dev.py test']
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'python3 tools/dev.py test' in ci
