"""Convert between nbdev notebooks and percent-format text, so a notebook can be written or reviewed as a script.

    python tools/nbpy.py to-nb nbs/01_store.py        # writes nbs/01_store.ipynb (then run nbdev-clean)
    python tools/nbpy.py to-py nbs/01_store.ipynb     # prints the notebook as percent-format text

Cells start with `# %%` (code) or `# %% [markdown]`; markdown lines are written with a leading `# `.
A code cell whose first line is `# %% tags=["parameters"]` keeps that tag; `id=…` on a header keeps the cell's id
(to-py writes it), so a round trip changes only what was edited. The notebook is the source of truth: commit the
.ipynb, not the .py.
"""
import json, re, secrets, sys
from pathlib import Path

_hdr = re.compile(r'^# %%(?: \[(markdown)\])?(?: tags=(\[.*?\]))?(?: id=(\w+))?\s*$')


def to_nb(src: Path) -> Path:
    cells, cur = [], None
    for line in src.read_text().splitlines():
        m = _hdr.match(line)
        if m:
            cur = dict(kind='markdown' if m.group(1) else 'code', tags=json.loads(m.group(2)) if m.group(2) else [], id=m.group(3), lines=[])
            cells.append(cur)
        elif cur is not None: cur['lines'].append(line)
    out = []
    for c in cells:
        lines = c['lines']
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if c['kind'] == 'markdown': lines = [l[2:] if l.startswith('# ') else l.lstrip('#') for l in lines]
        text = '\n'.join(lines)
        cell = dict(cell_type=c['kind'], id=c['id'] or secrets.token_hex(4), metadata={'tags': c['tags']} if c['tags'] else {}, source=text.splitlines(True))
        if c['kind'] == 'code': cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = dict(cells=out, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)
    dest = src.with_suffix('.ipynb')
    dest.write_text(json.dumps(nb, indent=1) + '\n')
    return dest


def to_py(src: Path) -> str:
    nb = json.loads(src.read_text())
    parts = []
    for c in nb['cells']:
        text = ''.join(c['source'])
        tags = c.get('metadata', {}).get('tags')
        hdr = '# %%' + (' [markdown]' if c['cell_type'] == 'markdown' else '') + (f' tags={json.dumps(tags)}' if tags else '') + (f' id={c["id"]}' if c.get('id') else '')
        if c['cell_type'] == 'markdown': text = '\n'.join(('# ' + l) if l else '#' for l in text.splitlines())
        parts.append(hdr + '\n' + text + '\n')
    return '\n'.join(parts)


if __name__ == '__main__':
    cmd, *paths = sys.argv[1:]
    for p in map(Path, paths):
        if cmd == 'to-nb': print(to_nb(p))
        elif cmd == 'to-py': sys.stdout.write(to_py(p))
        else: sys.exit(f'unknown command {cmd!r}: use to-nb or to-py')
