"""Run one notebook for the docs: every cell as `nbdev_test` runs it, outputs kept, then nbdev's processing.

`python tools/docs_exec.py SRC DST KEY` writes the processed notebook `DST` (for `_proc/`) with the outputs of its
cells; `tools/build_docs.py` runs it once per notebook, each in its own process. This replaces nbdev's
`exec_show_docs` processor (which runs only imports, exported cells and `show_doc`) by `exec_all`, which runs every
cell except those flagged with `tst_flags` (`slow`, `cuda`), `#| eval: false` cells and `nbdev_export()`, in the
notebook's folder, stopping at the first error as `nbdev_test` does. For a static page:
- plotly figures become HTML that loads `plotly.min.js` from the page's folder, without MathJax (no CDN), together
  with plotly's own mimetype `application/vnd.plotly.v1+json`, which JupyterLab's plotly extension draws (a notebook's
  HTML output cannot load the page's `plotly.min.js` there); the site's renderers, smalldocs and Quarto, show the HTML;
- matplotlib figures are PNG images (execnb's inline backend);
- each ipywidgets output gets a static HTML view: its controls, disabled, with their current values, beside the
  figure the widget drew (outside a kernel an `Output` widget's displays go to the cell); the widgets' state is
  also saved in the notebook's metadata, as nbdev does;
- a cell made only of `show_doc` calls documents every name (Jupyter would display only the last one);
- a cell made only of checks (`assert`, `test_eq`, `test_close`, ...) that shows nothing is run but left off the page.
The outputs of every executed cell, as executed (before nbdev's processors drop hidden cells or link names in Markdown),
are also kept in the processed notebook's metadata under `uss_outputs`, by cell id: `tools/save_outputs.py` writes them
back into the notebooks of `nbs/`.
"""
import ast, html, json, os, re, sys
from pathlib import Path

KEY = 'uss_docs_key'   # metadata of a processed notebook: the hash of what it was executed from
OUTS = 'uss_outputs'   # metadata of a processed notebook: {cell id: outputs as executed} of every executed cell

# run in each notebook's shell before its first cell: plotly figures as HTML with a local plotly.js
SETUP = """
import plotly.io as _pio
from plotly.io._base_renderers import MimetypeRenderer as _MR
class _DocsRenderer(_MR):
    "HTML that loads `plotly.min.js` from the page's folder, without MathJax (nothing from the internet), and plotly's mimetype for JupyterLab."
    def to_mimebundle(self, fig_dict):
        from plotly.io._base_renderers import PlotlyRenderer
        return {**PlotlyRenderer().to_mimebundle(fig_dict),
                'text/html': _pio.to_html(fig_dict, include_plotlyjs='plotly.min.js', include_mathjax=False, full_html=False, validate=False)}
_pio.renderers['uss_docs'] = _DocsRenderer()
_pio.renderers.default = 'uss_docs'
del _MR, _DocsRenderer
"""

# ---- static views of widgets

def _attr(w, k, d=''): return html.escape(str(getattr(w, k, d)))

def static_widget(w) -> str:
    "Static HTML of an ipywidgets widget: boxes as flex rows/columns, controls disabled with their current values."
    name = type(w).__name__
    desc = f'<span class="uss-widget-desc">{_attr(w, "description")}</span> ' if getattr(w, 'description', '') else ''
    if hasattr(w, 'children'):
        d = 'column' if name == 'VBox' else 'row'
        kids = ''.join(static_widget(c) for c in w.children)
        return f'<div class="uss-widget-box" style="display:flex;flex-direction:{d};flex-wrap:wrap;gap:.4em 1.5em">{kids}</div>'
    if name == 'Output': return ''   # what it shows is the figure displayed in the same cell
    if hasattr(w, 'options') and hasattr(w, 'index'):
        labels = getattr(w, '_options_labels', None) or [str(o) for o in w.options]
        sel = w.index if isinstance(w.index, tuple) else (w.index,)
        opts = ''.join(f'<option{" selected" if i in sel else ""}>{html.escape(str(l))}</option>' for i, l in enumerate(labels))
        return f'<label class="uss-widget" data-widget="{name}">{desc}<select disabled>{opts}</select></label>'
    if 'Slider' in name and hasattr(w, 'min'):
        if isinstance(w.value, tuple): val = ' – '.join(map(str, w.value))
        else: val = str(w.value)
        step = getattr(w, 'step', 1) or 'any'
        v0 = w.value[0] if isinstance(w.value, tuple) else w.value
        return (f'<label class="uss-widget" data-widget="{name}" data-value="{html.escape(val)}">{desc}'
                f'<input type="range" disabled min="{w.min}" max="{w.max}" step="{step}" value="{v0}"> <output>{html.escape(val)}</output></label>')
    if name in ('Checkbox', 'ToggleButton'):
        return f'<label class="uss-widget" data-widget="{name}"><input type="checkbox" disabled{" checked" if w.value else ""}> {desc}</label>'
    if name in ('HTML', 'HTMLMath'): return f'<div class="uss-widget" data-widget="{name}">{desc}{w.value}</div>'
    if hasattr(w, 'value'): return f'<span class="uss-widget" data-widget="{name}">{desc}<code>{html.escape(str(w.value))}</code></span>'
    return f'<span class="uss-widget" data-widget="{name}">{desc}{html.escape(name)}</span>'

def _widget(model_id):
    from ipywidgets.widgets.widget import _instances
    return _instances.get(model_id)

def add_static_views(cell):
    "Give each widget output of `cell` a `text/html` static view, so that a page without a widget manager shows it."
    for o in cell.get('outputs', []):
        data = o.get('data') or {}
        wv = data.get('application/vnd.jupyter.widget-view+json')
        if not wv or 'text/html' in data: continue
        w = _widget(wv.get('model_id'))
        if w is None: continue
        data['text/html'] = ('<div class="uss-widget-static" data-widget="%s">%s<p class="uss-widget-note">'
                             'A static view of an interactive widget: run the notebook to use its controls.</p></div>'
                             % (type(w).__name__, static_widget(w)))

# ---- the processor that runs every cell

ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

def _only_show_docs(src):
    "Is `src` two or more top-level `show_doc(...)` calls and nothing else?"
    try: body = ast.parse(src).body
    except SyntaxError: return False
    return len(body) > 1 and all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                                 and getattr(s.value.func, 'id', None) == 'show_doc' for s in body)

def _display_each(src):
    "`src` of top-level `show_doc` calls with each one displayed."
    body = ast.parse(src).body
    return 'from IPython.display import display as _display\n' + '\n'.join(f'_display({ast.get_source_segment(src, s.value)})' for s in body)

TEST_CALL = re.compile(r'test(_\w+)?$')

def _test_only(stmts):
    "Are `stmts` only checks: `assert`, calls of `test_*` functions (fastcore's `test_eq`, ...), and loops or `with` blocks of them?"
    def check(s):
        if isinstance(s, ast.Assert): return True
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call):
            f = s.value.func
            return bool(TEST_CALL.match(getattr(f, 'id', None) or getattr(f, 'attr', '')))
        if isinstance(s, (ast.For, ast.With)): return _test_only(s.body) and not getattr(s, 'orelse', None)
        return False
    return bool(stmts) and all(map(check, stmts))

def is_test_cell(src) -> bool:
    "Is the code `src` made only of checks (see `_test_only`)? Such a cell tests the module and is left off its page."
    try: return _test_only(ast.parse(src).body)
    except SyntaxError: return False

def drop_blank_streams(cell):
    "Remove stream outputs that are only terminal control codes (an `Output` widget's `clear_output` outside a kernel)."
    outs = cell.get('outputs', [])
    keep = [o for o in outs if o.get('output_type') != 'stream' or ANSI.sub('', ''.join(o.get('text', ''))).strip()]
    if len(keep) != len(outs): cell['outputs'] = keep

def make_exec_all(skip_flags):
    from execnb.shell import CaptureShell
    from nbdev.process import Processor
    class exec_all(Processor):
        "Run every cell as nbdev_test does (cells with `skip_flags`, `eval: false` and `nbdev_export()` skipped), keeping outputs."
        def begin(self):
            self.outs = {}   # cell id: outputs as executed
            self.k = CaptureShell(self.nb.path_)
            self.k.run_cell(SETUP)
        def __call__(self, cell):
            if cell.cell_type != 'code' or not cell.source or 'nbdev_export' + '(' in cell.source: return
            d = getattr(cell, 'directives_', {}) or {}
            if d.get('eval:', [''])[0].lower() == 'false' or set(skip_flags) & d.keys(): return
            # a cell of several `show_doc` calls documents each name (Jupyter would display only the last one)
            src = cell.source
            if _only_show_docs(src): cell.source = _display_each(src)
            try: self.k.cell(cell)
            finally: cell.source = src
            if self.k.exc:
                raise RuntimeError(f'error in {self.nb.path_} cell {cell.idx_}:\n{cell.source}\n\n{self.k.prettytb(fname=self.nb.path_)}') from None
            drop_blank_streams(cell)
            add_static_views(cell)
            self.outs[cell.id] = json.loads(json.dumps(cell.get('outputs', [])))
            if is_test_cell(src) and not cell.get('outputs'): del cell['source']   # a test-only cell: run, not shown
        def end(self):
            from ipywidgets import Widget
            mimetype = 'application/vnd.jupyter.widget-state+json'
            state = Widget.get_manager_state(drop_defaults=True)
            if state['state']: self.nb.metadata['widgets'] = {mimetype: state}
            self.nb.metadata[OUTS] = self.outs
    return exec_all

def process_one(src, dst, key):
    "Execute and process one notebook `src` into `dst`, marked with `key` (runs in its own process)."
    from execnb.nbio import read_nb, write_nb
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, exec_show_docs
    exec_all = make_exec_all(get_config().tst_flags.split())
    class ExecDefaults(FilterDefaults):
        def base_procs(self): return [exec_all if p is exec_show_docs else p for p in super().base_procs()]
    os.environ['IN_TEST'] = '1'
    nb = read_nb(src)
    nb.path_ = str(src)
    os.chdir(Path(src).parent)
    ExecDefaults()(nb)
    nb.metadata[KEY] = key
    write_nb(nb, dst)

if __name__ == '__main__': process_one(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
