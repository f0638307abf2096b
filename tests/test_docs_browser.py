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
FIGURELESS = {'00_core', '02_backbones', '11_hp', '12_smooseg', '14_refine', '17_experiments', '18_distributed', '19_cli'}
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
    assert not [h for h in got['heads'] if h.startswith('_')], f'{stem}: private names on the page: {got["heads"]}'
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

# ---- readability: the theme's fonts and colours really apply (a broken theme stylesheet leaves Times and pale code)

READ_PAGES = ['00_core', '06_kmeans']

@pytest.fixture(scope='session')
def small_site(tmp_path_factory):
    "A site of a few pages (`READ_PAGES`), rendered into a temporary folder (the notebooks executed only where `_proc/` is stale)."
    chromium_or_skip()
    out = tmp_path_factory.mktemp('small_site')/'_docs'
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), *READ_PAGES, '--out', str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}'
    return out

STYLE_JS = """
function rgba(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length == 3 ? [...m, 1] : m; }
function over(top, below) { const a = top[3]; return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]); }
function background(e) {   // the colour behind `e`: its ancestors' backgrounds composited over the white page
  const layers = [];
  for (; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) layers.push(c); if (c[3] == 1) break; }
  return layers.reverse().reduce((b, c) => over(c, b), [255, 255, 255, 1]);
}
const out = {};
for (const [what, sel] of Object.entries(arguments[0])) {
  out[what] = [...document.querySelectorAll(sel)].filter(e => e.textContent.trim() && e.getClientRects().length).slice(0, 40).map(e => {
    const cs = getComputedStyle(e), bg = background(e);
    return {fg: over(rgba(cs.color), bg), bg, family: cs.fontFamily, text: e.textContent.trim().slice(0, 30)};
  });
}
out.code_sources = [...document.querySelectorAll('div.cell > div.sourceCode pre code')].map(e => e.textContent);
return out;
"""
READ_WHAT = {'body text': 'main p', 'headings': 'main h1, main h2, main h3', 'inline code': 'main p code',
             'code blocks': 'div.sourceCode pre code', 'syntax colours': 'div.sourceCode pre code span',
             'signatures': '.cell-output pre', 'navbar': '.navbar .navbar-title, .navbar .nav-link'}
SERIF, MONO = re.compile(r'serif|times|georgia|cambria', re.I), re.compile(r'mono|courier|consolas|menlo', re.I)

def _lum(c):
    "Relative luminance of an sRGB colour (WCAG 2)."
    v = [x / 255 for x in c[:3]]
    v = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in v]
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]

def contrast(fg, bg):
    "WCAG contrast ratio of two colours, from 1 to 21."
    a, b = sorted((_lum(fg), _lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)

def test_contrast_ratio():
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0 and contrast((9, 9, 9), (9, 9, 9)) == 1
    assert contrast((225, 228, 232), (255, 255, 255)) < 1.3   # the pale grey code of a lost theme

def _used_font(d, selector):
    "The font Chromium really draws the first `selector` element's text with (DevTools' platform fonts)."
    d.execute_cdp_cmd('DOM.enable', {}); d.execute_cdp_cmd('CSS.enable', {})
    root = d.execute_cdp_cmd('DOM.getDocument', {'depth': 0})['root']['nodeId']
    node = d.execute_cdp_cmd('DOM.querySelector', {'nodeId': root, 'selector': selector})['nodeId']
    fonts = d.execute_cdp_cmd('CSS.getPlatformFontsForNode', {'nodeId': node})['fonts']
    return max(fonts, key=lambda f: f['glyphCount'])['familyName']

@pytest.mark.parametrize('stem', READ_PAGES)
def test_page_is_readable(small_site, driver, stem):
    "Body text in a sans-serif font, code in a monospace one, and every text colour at least 4.5:1 against what is behind it."
    driver.get((small_site/f'{stem}.html').as_uri())
    for _ in range(100):   # the page loaded and laid out (a loaded machine can be slow to)
        got = driver.execute_script(STYLE_JS, READ_WHAT)
        if driver.execute_script('return document.readyState') == 'complete' and all(got[w] for w in READ_WHAT): break
        time.sleep(0.1)
    for what in READ_WHAT: assert got[what], f'{stem}: no {what} found'
    assert 'sans-serif' in got['body text'][0]['family'] and not SERIF.search(got['body text'][0]['family'].split(',')[0])
    assert MONO.search(got['code blocks'][0]['family']), got['code blocks'][0]
    body, code = _used_font(driver, 'main p'), _used_font(driver, 'div.sourceCode pre code')
    assert not SERIF.search(body.replace('Sans', '')), f'{stem}: body text drawn in {body}'
    assert MONO.search(code), f'{stem}: code drawn in {code}'
    low = [(what, e['text'], round(contrast(e['fg'], e['bg']), 2)) for what in READ_WHAT for e in got[what] if contrast(e['fg'], e['bg']) < 4.5]
    assert not low, f'{stem}: text below 4.5:1 contrast: {low[:8]}'
    # the page shows the module's public API only, and no cell made only of checks
    heads = driver.execute_script("return [...document.querySelectorAll('h2,h3,h4')].map(h => h.textContent.trim())")
    assert not [h for h in heads if h.startswith('_')], heads
    sys.path.insert(0, str(ROOT/'tools'))
    from docs_exec import is_test_cell
    tests = [s for s in got['code_sources'] if is_test_cell(s)]
    assert not tests, f'{stem}: test-only cells shown: {tests[:3]}'
