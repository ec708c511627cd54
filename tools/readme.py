"""Write README.md from nbs/index.ipynb, the tour (what `nbdev-readme` does, without Quarto).

    python3 tools/readme.py          # write README.md
    python3 tools/readme.py --check  # exit 1 when README.md is not what index.ipynb makes

Markdown cells are copied as they are; code cells become fenced Python blocks, with their text outputs
when the notebook holds any. Cells marked `#| hide` are left out and `#|` directive lines are removed.
nbdev-readme would do this with Quarto, which cannot be installed here (see docs/decisions/).
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = ['<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->']
    for c in nb['cells']:
        lines = ''.join(c['source']).splitlines()
        if any(l.strip() in ('#| hide', '#|hide') for l in lines): continue
        body = '\n'.join(l for l in lines if not l.lstrip().startswith('#|')).strip('\n')
        if not body: continue
        if c['cell_type'] == 'markdown': parts.append(body)
        elif c['cell_type'] == 'code':
            parts.append(f'```python\n{body}\n```')
            out = ''.join(''.join(o.get('text', '')) if o.get('output_type') == 'stream' else ''.join(o.get('data', {}).get('text/plain', ''))
                          for o in c.get('outputs', []))
            if out.strip(): parts.append(f'```\n{out.rstrip()}\n```')
    return '\n\n'.join(parts) + '\n'


if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date with nbs/index.ipynb: run python3 tools/readme.py')
    else: readme.write_text(text, encoding='utf-8')
