"""Save the outputs of the executed notebooks into `nbs/`, so that a notebook opened in JupyterLab shows its figures.

`make nbtest` (tools/build_docs.py, tools/docs_exec.py) runs every notebook as `nbdev_test` does and keeps, in each
processed notebook `_proc/X.ipynb`, the outputs of every executed cell as executed (metadata `uss_outputs`, by cell
id). This tool writes them into `nbs/X.ipynb`, cell by cell (matched by id): executed cells get their fresh outputs;
cells that were not executed (flagged `slow` or `cuda`, `#| eval: false`) keep what they had. A large PNG figure
(photographs) is saved as a JPEG when that halves it (the docs keep the PNG). Widget outputs are
saved as their static view (disabled controls with their values: `text/html`), without the widget model reference,
which a notebook opened without its kernel could not draw; plotly figures are saved as plotly's mimetype, drawn by
JupyterLab's plotly extension (their HTML, which loads the docs site's `plotly.min.js`, stays in `_proc/`). A notebook's outputs must stay under `MAX_BYTES`.
Then `nbdev_clean` leaves them as they are (settings.ini: `clear_all = False`).

`nbs/index.ipynb` is left alone: README.md is built from its outputs by tools/readme.py, which keeps only some of them.

Usage: python tools/save_outputs.py [--check] [NOTEBOOK ...]   (all module notebooks by default, e.g. `04_spectral`;
--check writes nothing and exits 1 when a notebook's saved outputs differ from the executed ones)
tests/test_saved_outputs.py checks, after `make nbtest`, that the saved outputs are current.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
import build_docs as B
from docs_exec import OUTS

MAX_BYTES = 2_000_000    # the outputs of one notebook, as JSON
WIDGET = 'application/vnd.jupyter.widget-view+json'
PLOTLY = 'application/vnd.plotly.v1+json'
IMAGES = ('image/png', 'image/jpeg', 'image/svg+xml', 'image/gif')

README_NB = 'index.ipynb'   # settings.ini's `readme_nb`: README.md is built from its outputs (tools/readme.py), which it keeps as they are

def notebooks(names=None) -> list:
    "The module notebooks of `nbs/` (all, or those named by stem or file name); not the README's notebook."
    nbs = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')) and p.name != README_NB)
    return [p for p in nbs if not names or p.stem in names or p.name in names]

def _local_paths(text):
    "`text` (a string or a list of lines) without the absolute paths of this machine: the checkout, the installed packages (in warnings), the shared data, the home folder (as `~`) and temporary folders (as `<tmp>`)."
    import re, sysconfig, tempfile
    subs = [(sysconfig.get_paths()['purelib'] + '/', 'site-packages/'), (str(ROOT) + '/', ''), (str(ROOT.parent/'shared'), '../shared'),
            (str(Path.home()) + '/', '~/')]
    tmp = re.compile(re.escape(tempfile.gettempdir()) + r'/(?:tmp|pytest-of-)[\w.-]*')
    def one(s):
        for a, b in subs: s = s.replace(a, b)
        return tmp.sub('<tmp>', s)
    return one(text) if isinstance(text, str) else [one(s) for s in text]

BIG_PNG = 150_000     # a PNG figure larger than this (base64 characters), mostly photographs, is saved as a JPEG

def _jpeg_if_smaller(o):
    "Replace a large `image/png` of output `o` by a JPEG (quality 90, on white) when that is less than half its size."
    data = o.get('data') or {}
    png = data.get('image/png')
    if png is None: return
    png = ''.join(png) if isinstance(png, list) else png
    if len(png) < BIG_PNG: return
    import base64, io
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(png)))
    rgb = Image.new('RGB', im.size, 'white')
    rgb.paste(im.convert('RGBA'), mask=im.convert('RGBA').getchannel('A'))
    buf = io.BytesIO(); rgb.save(buf, 'JPEG', quality=90, optimize=True)
    jpg = base64.b64encode(buf.getvalue()).decode()
    if len(jpg) < len(png) / 2:
        del data['image/png']; data['image/jpeg'] = jpg
        meta = o.get('metadata') or {}
        if 'image/png' in meta: meta['image/jpeg'] = meta.pop('image/png')

def _no_control_lines(text):
    "Stream `text` without the lines that are only terminal control codes (an `Output` widget's `clear_output` outside a kernel)."
    from docs_exec import ANSI
    lines = text.splitlines(True) if isinstance(text, str) else text
    keep = [l for l in lines if '\x1b' not in l or ANSI.sub('', l).strip()]
    return ''.join(keep) if isinstance(text, str) else keep

def saved_view(outputs) -> list:
    "`outputs` as saved in a notebook: widget outputs as their static view, no execution counts, no absolute local paths in text."
    res = []
    for o in json.loads(json.dumps(outputs)):
        if 'execution_count' in o: o['execution_count'] = None
        data = o.get('data') or {}
        if WIDGET in data and 'text/html' in data: del data[WIDGET]
        if PLOTLY in data: data.pop('text/html', None)   # the docs' HTML needs the site's plotly.min.js: useless in a notebook
        if 'text' in o: o['text'] = _no_control_lines(_local_paths(o['text']))
        if 'text/plain' in data: data['text/plain'] = _local_paths(data['text/plain'])
        _jpeg_if_smaller(o)
        res.append(o)
    return res

def figures(outputs) -> int:
    "How many figures `outputs` show: images (matplotlib) and plotly figures."
    return sum(any(m in (o.get('data') or {}) for m in (*IMAGES, PLOTLY)) for o in outputs)

def widgets(outputs) -> int:
    "How many widget views `outputs` show (live, or their static view)."
    return sum(WIDGET in (d := o.get('data') or {}) or 'uss-widget-static' in ''.join(d.get('text/html', '')) for o in outputs)

def summary(cells) -> dict:
    "{cell id: (prints to stdout, displayed results, figures, widget views)} of the code cells with such outputs: what a fresh execution must reproduce. Text on stderr (warnings, progress bars) is left out: whether it shows can depend on caches and on what ran before in the process."
    res = {}
    for i, outs in cells.items():
        outs = [o for o in outs if o.get('name') != 'stderr']
        if outs: res[i] = (any(o.get('name') == 'stdout' for o in outs), sum(o.get('output_type') != 'stream' for o in outs), figures(outs), widgets(outs))
    return res

def output_bytes(nb) -> int:
    "Size of a notebook's outputs (and of its widget state, if any) as JSON."
    return len(json.dumps([c.get('outputs', []) for c in nb['cells']])) + len(json.dumps(nb['metadata'].get('widgets', {})))

def executed(src) -> dict:
    "{cell id: outputs} of the cells of notebook `src` as `_proc/` executed them; an error if `_proc/` lacks it or is stale."
    proc = ROOT/'_proc'/src.name
    if not proc.exists(): raise FileNotFoundError(f'{proc.relative_to(ROOT)} is missing: run `make nbtest`')
    from nbdev.config import get_config
    nb = json.loads(proc.read_text())
    if nb['metadata'].get(B.KEY) != B.nb_key(src, B.lib_key(get_config())):
        raise ValueError(f'{proc.relative_to(ROOT)} was executed from another version of {src.name} or of the library: run `make nbtest`')
    if OUTS not in nb['metadata']: raise ValueError(f'{proc.relative_to(ROOT)} has no `{OUTS}`: run `make nbtest`')
    return nb['metadata'][OUTS]

def saved(src) -> dict:
    "{cell id: outputs} of the code cells of `src` as saved."
    return {c['id']: c.get('outputs', []) for c in json.loads(Path(src).read_text())['cells'] if c['cell_type'] == 'code'}

def save(src, outs=None) -> bool:
    "Write the executed outputs `outs` (default: `executed(src)`) into notebook `src`; True if it changed."
    outs = executed(src) if outs is None else outs
    nb = json.loads(Path(src).read_text())
    for c in nb['cells']:
        if c['cell_type'] == 'code' and c.get('id') in outs:
            c['outputs'], c['execution_count'] = saved_view(outs[c['id']]), None
    n = output_bytes(nb)
    if n >= MAX_BYTES: raise ValueError(f'{Path(src).name}: outputs of {n:,} bytes, over {MAX_BYTES:,}: make its figures smaller')
    from execnb.nbio import nb2str
    new, old = nb2str(nb), Path(src).read_text()
    if new != old: Path(src).write_text(new)
    return new != old

def differences(src) -> list:
    "How the saved outputs of `src` differ from the executed ones (cell ids with outputs, figures, widget views), as lines."
    ran, have = executed(src), saved(src)   # `ran` also holds the `show_doc` cells nbdev adds, not in the notebook
    want, got = summary({i: o for i, o in ran.items() if i in have}), summary({i: o for i, o in have.items() if i in ran})
    return [f'cell {i}: executed {want.get(i, "no output")}, saved {got.get(i, "no output")} (stdout, results, figures, widgets)'
            for i in sorted(set(want) | set(got)) if want.get(i) != got.get(i)]

def main():
    import os; os.chdir(ROOT)
    args = sys.argv[1:]
    check = '--check' in args
    names = [a for a in args if a != '--check']
    bad = 0
    for p in notebooks(names):
        try:
            if check:
                d = differences(p)
                if d: bad += 1; print(f'{p.name}: saved outputs are not current:\n  ' + '\n  '.join(d))
            else: print(f'{p.name}: {"saved" if save(p) else "unchanged"}')
        except (FileNotFoundError, ValueError) as e: bad += 1; print(f'{p.name}: not saved: {e}', file=sys.stderr)
    sys.exit(1 if bad else 0)

if __name__ == '__main__': main()
