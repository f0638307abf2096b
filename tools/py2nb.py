"""Convert a percent-format script (`# %%` code cells, `# %% [markdown]` prose cells) to a notebook.

Usage: python tools/py2nb.py SRC.py [DEST.ipynb]   (DEST defaults to SRC with .ipynb)
Contributors may draft a notebook as a script with this; the .ipynb in nbs/ is the source of truth.
"""
import hashlib, json, re, sys
from pathlib import Path

def cells_of(text):
    "Split percent-format `text` into (kind, source) pairs."
    parts = re.split(r'^# %%(.*)$', text, flags=re.M)
    out = []
    for head, body in zip(parts[1::2], parts[2::2]):
        body = body.strip('\n')
        if '[markdown]' in head:
            body = '\n'.join(l[2:] if l.startswith('# ') else l.lstrip('#') for l in body.splitlines())
            out.append(('markdown', body))
        else: out.append(('code', body))
    return out

def to_nb(cells):
    "A notebook dict from (kind, source) pairs."
    def cell(i, kind, src):
        cid = hashlib.sha1(f'{i}:{src}'.encode()).hexdigest()[:8]  # stable ids keep nbdev_export deterministic
        c = dict(cell_type=kind, id=cid, metadata={}, source=src.splitlines(keepends=True))
        if kind == 'code': c.update(execution_count=None, outputs=[])
        return c
    return dict(cells=[cell(i, k, s) for i, (k, s) in enumerate(cells)], metadata=dict(
        kernelspec=dict(display_name='python3', language='python', name='python3')), nbformat=4, nbformat_minor=5)

if __name__ == '__main__':
    src = Path(sys.argv[1])
    dest = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix('.ipynb')
    dest.write_text(json.dumps(to_nb(cells_of(src.read_text())), indent=1) + '\n')
    print(f'wrote {dest}')
