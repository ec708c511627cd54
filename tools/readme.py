"""Write README.md from nbs/index.ipynb, the tour (what `nbdev-readme` does, without Quarto), and
docs/reports/<kind>.md from each report template in src/wildproof/templates/.

    python3 tools/readme.py          # write README.md and the template pages
    python3 tools/readme.py --check  # exit 1 when one of them is not what its notebook makes

Markdown cells are copied as they are; code cells become fenced Python blocks, with their text outputs
when the notebook holds any. Cells marked `#| hide` are left out and `#|` directive lines are removed.
nbdev-readme would do this with Quarto, which cannot be installed here (see docs/decisions/).
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = [f'<!-- Generated from {nb_path.relative_to(ROOT)} by tools/readme.py: edit the notebook, not this file. -->']
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


def pages() -> dict:
    "Each generated file and the text its notebook makes."
    out = {ROOT / 'README.md': render()}
    for t in sorted((ROOT / 'src' / 'wildproof' / 'templates').glob('*.ipynb')):
        out[ROOT / 'docs' / 'reports' / f'{t.stem}.md'] = render(t)
    return out


if __name__ == '__main__':
    for path, text in pages().items():
        if '--check' in sys.argv:
            if not path.exists() or path.read_text(encoding='utf-8') != text:
                sys.exit(f'{path.relative_to(ROOT)} is out of date with its notebook: run python3 tools/readme.py')
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding='utf-8')
