"The pieces of the offline docs build (tools/build_docs.py) that need no browser: widget views, show_doc cells, offline CSS, links."
import json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs as B, docs_exec as X

def test_static_view_of_a_widget_shows_its_controls_and_values():
    import ipywidgets as W
    dd = W.Dropdown(options=[('a', 0), ('b <1>', 1)], value=1, description='image')
    sl = W.IntSlider(value=3, min=0, max=9, description='eigenvector')
    h = X.static_widget(W.VBox([W.HBox([dd, sl]), W.Output(), W.Checkbox(value=True, description='on'), W.HTML('<b>x</b>')]))
    assert '<option>a</option><option selected>b &lt;1&gt;</option>' in h and '<select disabled>' in h
    assert 'type="range" disabled min="0" max="9" step="1" value="3"' in h and '<output>3</output>' in h
    assert 'type="checkbox" disabled checked' in h and '<b>x</b>' in h
    assert h.count('flex-direction:column') == 1 and h.count('flex-direction:row') == 1
    sl.value = 7
    assert 'value="7"' in X.static_widget(sl)

def test_widget_outputs_get_a_static_view():
    import ipywidgets as W
    box = W.VBox([W.IntSlider(value=2)])
    cell = {'outputs': [{'output_type': 'display_data', 'data': {'text/plain': 'VBox(...)',
            'application/vnd.jupyter.widget-view+json': {'model_id': box.model_id, 'version_major': 2, 'version_minor': 0}}}]}
    X.add_static_views(cell)
    html = cell['outputs'][0]['data']['text/html']
    assert 'uss-widget-static' in html and 'value="2"' in html

def test_blank_streams_are_dropped():
    cell = {'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': ['\x1b[2K\r', '\x1b[2K\r']},
                        {'output_type': 'stream', 'name': 'stdout', 'text': ['42\n']}]}
    X.drop_blank_streams(cell)
    assert [o['text'] for o in cell['outputs']] == [['42\n']]

def test_cells_of_show_docs_display_each():
    assert X._only_show_docs('#| echo: false\nshow_doc(a)\nshow_doc(b.c)')
    assert not X._only_show_docs('show_doc(a)') and not X._only_show_docs('show_doc(a)\nx = 1')
    assert not X._only_show_docs('show_doc(a)\nprint(b)') and not X._only_show_docs('show_doc(')
    src = X._display_each('show_doc(a)\nshow_doc(b, title_level=3)')
    assert src.endswith('_display(show_doc(a))\n_display(show_doc(b, title_level=3))')

def test_stylesheets_lose_their_web_font_imports(tmp_path):
    (tmp_path/'t.css').write_text('@import url(https://fonts.googleapis.com/css2?family=X&display=swap);:root{--a:1}'
                                  '@import "http://x.org/y.css";b{c:d}')
    B._offline_css(tmp_path)
    assert (tmp_path/'t.css').read_text() == ':root{--a:1}b{c:d}'

def test_a_font_import_with_semicolons_goes_whole(tmp_path):
    "Bootswatch's import of Google Fonts has `;` inside its URL: all of it goes, and the rules after it stay intact."
    css = ('/*! Bootswatch */@import url(https://fonts.googleapis.com/css2?family=Source+Sans+Pro:wght@300;400;700&display=swap);'
           ':root,[data-bs-theme=light]{--bs-body-color:#373a3c}@import url("//x.org/a;b.css") screen;p{c:d}')
    (tmp_path/'t.css').write_text(css)
    B._offline_css(tmp_path)
    assert (tmp_path/'t.css').read_text() == '/*! Bootswatch */:root,[data-bs-theme=light]{--bs-body-color:#373a3c}p{c:d}'

def test_the_built_themes_start_with_their_rules(tmp_path):
    "Every Bootswatch theme smalldocs ships keeps its `:root` block after the offline CSS pass (no stray URL tail)."
    import smalldocs
    for f in (Path(smalldocs.__file__).parent/'assets'/'vendor'/'bootswatch').glob('*.min.css'):
        (tmp_path/f.name).write_text(f.read_text())
    B._offline_css(tmp_path)
    for f in tmp_path.glob('*.min.css'):
        t = f.read_text()
        assert '@import' not in t and 'display=swap' not in t, f.name
        assert re.search(r'\*/:root', t), f'{f.name}: {t[t.find("*/", 300) - 40:][:120]!r}'

def test_links_into_the_site_point_at_the_pages(tmp_path):
    proc, out = tmp_path/'proc', tmp_path/'out'; proc.mkdir(); out.mkdir()
    nb = {'cells': [{'cell_type': 'raw', 'source': ['---\n', 'output-file: spectral.html\n', 'title: spectral\n', '---\n']}]}
    (proc/'04_spectral.ipynb').write_text(json.dumps(nb))
    (out/'a.html').write_text('<a href="https://h.io/p/spectral.html#eigs">x</a> <a href="https://h.io/p/other.html">y</a>')
    B._localise_links(proc, out, 'https://h.io/p/')
    assert (out/'a.html').read_text() == '<a href="04_spectral.html#eigs">x</a> <a href="https://h.io/p/other.html">y</a>'

def test_test_only_cells_are_recognised():
    assert X.is_test_cell('test_eq(f(1), 2)\nassert g()\nfor i in range(3): test_close(h(i), 0)')
    assert X.is_test_cell('with warnings.catch_warnings():\n    test_fail(lambda: f(-1), contains="bad")')
    assert not X.is_test_cell('x = f(1)\ntest_eq(x, 2)') and not X.is_test_cell('f(1)') and not X.is_test_cell('test_eq(')
    assert not X.is_test_cell('') and not X.is_test_cell('show_doc(f)')

def test_plotly_figures_carry_html_and_their_mimetype():
    "The docs' renderer: HTML loading the page's plotly.min.js (the site), and plotly's mimetype (JupyterLab draws it)."
    import plotly.graph_objects as go, plotly.io as pio
    ns = {}
    old = pio.renderers.default
    try:
        exec(X.SETUP, ns)
        b = pio.renderers['uss_docs'].to_mimebundle(go.Figure(go.Scatter(y=[1, 3, 2])).to_dict())
    finally: pio.renderers.default = old
    assert set(b) == {'text/html', 'application/vnd.plotly.v1+json'}
    assert 'src="plotly.min.js"' in b['text/html'] and 'cdn' not in b['text/html'].lower()
    assert b['application/vnd.plotly.v1+json']['data'][0]['type'] == 'scatter'
