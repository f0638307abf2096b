"""The documentation site, built offline (`tools/build_docs.py`, as `make docs` does) and opened in headless Chromium.

Every page: its title, its API entries (a heading for each public function and class of its module), each figure of
its notebook rendered (matplotlib images decoded, plotly figures drawn by the local plotly.js), the static views of
its widgets, its maths typeset, no console error, and nothing loaded from anywhere but the site's own files. Screenshots of every page
are saved to a temporary folder (printed). The build reuses the notebooks that `make docs` executed when they are
newer than their sources, so in `make test` it costs only the rendering.
"""
import importlib, inspect, json, os, re, subprocess, sys, time
from pathlib import Path
import pytest
from browser import make_driver, chromium_or_skip, full_screenshot

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))
# pages whose notebooks draw no figure at all (checked below against the notebooks' outputs, both ways)
FIGURELESS = {'00_core', '02_backbones', '06_kmeans', '11_metrics', '13_experiments', '14_distributed', '15_hp', '16_smooseg'}
SITE_TITLE = 'uss_nb'

@pytest.fixture(scope='session')
def site():
    "Build the site into `_docs/` (the notebooks executed only where `_proc/` is stale)."
    t = time.time()
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--jobs', str(os.cpu_count() or 1)],
                       cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}'
    print(f'\ndocs built in {time.time() - t:.0f} s')
    return ROOT/'_docs'

@pytest.fixture(scope='session')
def driver():
    d = make_driver()
    yield d
    d.quit()

@pytest.fixture(scope='session')
def shots(tmp_path_factory):
    p = tmp_path_factory.mktemp('docs_screenshots')
    print(f'\nscreenshots of the docs in {p}')
    return p

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _frontmatter(nb):
    "Title and module of a processed notebook, from the front matter nbdev puts in its first cell."
    fm = _src(nb['cells'][0])
    title = re.search(r'^title:\s*(.+)$', fm, re.M)
    return title.group(1).strip().strip('"\'') if title else None

def _module(src_nb):
    m = re.search(r'^#\|[ \t]*default_exp[ \t]+(\S+)', '\n'.join(_src(c) for c in src_nb['cells'] if c['cell_type'] == 'code'), re.M)
    return m.group(1) if m else None

IMAGES = ('image/svg+xml', 'image/png', 'image/jpeg', 'image/gif')
ORDER = ['text/html', *IMAGES, 'text/markdown', 'text/latex', 'text/plain']

def expected(stem):
    "What the page of notebook `stem` must show: title, API names, number of figures and of widget views."
    proc = json.loads((ROOT/'_proc'/f'{stem}.ipynb').read_text())
    figs = widgets = 0
    for c in proc['cells']:
        for o in c.get('outputs', []):
            data = o.get('data') or {}
            mime = next((m for m in ORDER if m in data), None)
            html = ''.join(data.get('text/html', ''))
            figs += mime in IMAGES or (mime == 'text/html' and 'plotly.min.js' in html)
            widgets += 'application/vnd.jupyter.widget-view+json' in data
    mod = _module(json.loads((ROOT/'nbs'/f'{stem}.ipynb').read_text()))
    api = []
    if mod:
        m = importlib.import_module(f'uss_nb.{mod}')
        api = [n for n in m.__all__ if (inspect.isfunction(getattr(m, n)) or inspect.isclass(getattr(m, n)))
               and getattr(getattr(m, n), '__module__', None) == m.__name__]
    return dict(title=_frontmatter(proc), api=api, figures=figs, widgets=widgets, module=mod)

def test_every_notebook_has_a_page(site):
    for nb in NBS: assert (site/f'{nb.stem}.html').stat().st_size > 1000, nb.name
    assert (site/'plotly.min.js').stat().st_size > 1_000_000

LOADS = re.compile(r'<(?:script|link|img|iframe|source|video|audio|embed|track|input)\b[^>]*?\b(?:src|href|data|poster|srcset)\s*=\s*["\']?\s*(?:https?:)?//', re.I)
CSS_LOADS = re.compile(r'(?:url\(\s*["\']?|@import\s+["\']?)(?:https?:)?//', re.I)

def test_no_page_loads_from_the_internet(site):
    "No page or stylesheet of the site refers to a resource on another host (links to GitHub are links, not loads)."
    for p in [*site.rglob('*.html'), *site.rglob('*.css')]:
        t = p.read_text(errors='replace')
        hit = LOADS.search(t) or CSS_LOADS.search(t)
        assert hit is None, f'{p.relative_to(site)} loads {t[hit.start():hit.start() + 200]}'

def test_figure_less_pages_are_known(site):
    "The list of pages without figures is the truth: a figure added to one of them, or lost elsewhere, fails here."
    none = {nb.stem for nb in NBS if expected(nb.stem)['figures'] == 0}
    assert none == FIGURELESS, f'pages without figures are {sorted(none)}, FIGURELESS says {sorted(FIGURELESS)}: update one or the other'

FIGURES_JS = """
const imgs = [...document.querySelectorAll('.cell-output img[src^="data:image"], .cell-output svg')]
  .filter(e => e.tagName.toLowerCase() == 'svg' ? !e.closest('.js-plotly-plot') : (e.complete && e.naturalWidth > 0));
const plots = [...document.querySelectorAll('.js-plotly-plot')];
const drawn = plots.filter(p => p.querySelector('.main-svg') && p.getBoundingClientRect().height > 50);
const heads = [...document.querySelectorAll('h1,h2,h3,h4,h5')].map(h => h.textContent.trim());
const widgets = [...document.querySelectorAll('.uss-widget-static')].map(w => w.querySelectorAll('input[disabled], select[disabled]').length);
const res = performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);
const math = document.querySelectorAll('span.math').length, typeset = document.querySelectorAll('span.math .katex').length;
return {ready: document.readyState, images: imgs.length, plots: plots.length, drawn: drawn.length, heads, widgets, res, title: document.title,
        h1: (document.querySelector('h1') || {}).textContent, math, typeset, texerr: document.querySelectorAll('.katex-error').length};
"""

@pytest.mark.parametrize('stem', [nb.stem for nb in NBS])
def test_page_in_chromium(site, driver, shots, stem):
    exp = expected(stem)
    driver.get((site/f'{stem}.html').as_uri())
    for _ in range(200):   # the page loaded, and plotly's figures drawn (after load)
        got = driver.execute_script(FIGURES_JS)
        if got['ready'] == 'complete' and got['drawn'] == got['plots']: break
        time.sleep(0.1)
    full_screenshot(driver, shots/f'{stem}.png')
    assert (shots/f'{stem}.png').stat().st_size > 10_000
    # title
    want = SITE_TITLE if exp['title'] == SITE_TITLE else f"{exp['title']} – {SITE_TITLE}"
    assert got['title'] == want and exp['title'] in got['h1']
    # API entries: a heading for every public function and class of the module
    missing = [n for n in exp['api'] if n not in got['heads']]
    assert not missing, f'{stem}: no API entry for {missing}'
    if exp['module']: assert exp['api'], f'{stem}: module {exp["module"]} has no public function or class?'
    # figures: every figure output rendered; pages without any are the known ones
    assert got['drawn'] == got['plots'], f'{stem}: {got["plots"] - got["drawn"]} plotly figures not drawn'
    assert got['images'] + got['drawn'] == exp['figures'], (stem, got, exp)
    assert (exp['figures'] >= 1) != (stem in FIGURELESS)
    # widgets: a static view with its controls for each widget output
    assert len(got['widgets']) == exp['widgets'] and all(n >= 1 for n in got['widgets']), (stem, got['widgets'])
    # maths typeset by the local KaTeX (Debian libjs-katex, which `make browser-deps` installs); without it, left as TeX
    if (site/'site_libs'/'katex'/'katex.min.js').exists(): assert got['typeset'] == got['math'] and not got['texerr'], (stem, got)
    else: assert got['typeset'] == 0
    # nothing from the internet, no JavaScript error
    assert all(u.startswith(('file:', 'data:', 'blob:')) for u in got['res']), [u for u in got['res'] if not u.startswith('file:')]
    errors = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors
