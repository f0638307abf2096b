"""Offline docs: execute the notebooks, run nbdev's processing, render `_proc/` into `_docs/` with smalldocs.

Neither nbdev's processing nor smalldocs (it never runs code) produces the examples' outputs, and the outputs saved in
the notebooks may be stale, so each notebook is first run and processed by `tools/docs_exec.py` (every cell as
`nbdev_test` runs it, outputs kept, figures and widgets made static) into `_proc/`, the folder `nbdev_docs` hands to
Quarto. A processed notebook is reused while its cells' sources, the library, settings.ini and docs_exec.py are
unchanged (their hash is kept in its metadata; the outputs saved in a notebook are not part of it): `make nbtest` runs
the notebooks this way, and the docs then only render. `tools/save_outputs.py` copies the outputs of `_proc/` back
into `nbs/`. The `_quarto.yml` project in `_proc/` is rendered by Quarto where it is installed, else by smalldocs; then,
for an offline site: `plotly.min.js` is copied next to the pages, the themes' web-font imports are dropped, nbdev's
absolute links into the site point at the pages, and maths is typeset by a local KaTeX (Debian `libjs-katex`;
without it, maths stays as TeX).

Usage: python tools/build_docs.py [--no-render] [--jobs N] [--force] [--out DIR] [NOTEBOOK ...]
(with notebook names, e.g. `04_spectral index`, only those pages are executed and rendered)
"""
import argparse, hashlib, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXEC = Path(__file__).parent/'docs_exec.py'
KEY = 'uss_docs_key'   # as in docs_exec.py: the metadata key of the hash a processed notebook was executed from
KATEX_CDN = re.compile(r'<(?:link|script)[^>]*katex@[^>]*>(?:</script>)?')
KATEX_LOCAL = Path('/usr/share/javascript/katex')

# ---- the build

def lib_key(cfg):
    "Hash of what every notebook's outputs depend on: the library (not nbdev's index `_modidx.py`), docs_exec.py, settings.ini."
    h = hashlib.sha1()
    for f in sorted(p for p in Path(cfg.lib_path).rglob('*.py') if p.name != '_modidx.py'): h.update(f.name.encode() + f.read_bytes())
    for f in (EXEC, cfg.config_file): h.update(Path(f).read_bytes())
    return h.hexdigest()

def nb_key(src, lib):
    "Hash of a notebook's cells (ids, types, sources: not their outputs) and `lib`: what its execution depends on."
    cells = [(c.get('id'), c['cell_type'], ''.join(c['source'])) for c in json.loads(Path(src).read_text())['cells']]
    return hashlib.sha1(json.dumps(cells).encode() + lib.encode()).hexdigest()

def stored_key(proc_nb):
    "The key a processed notebook was executed under (in its metadata), or None."
    try: return json.loads(Path(proc_nb).read_text())['metadata'].get(KEY)
    except (OSError, ValueError, KeyError): return None

def process(names=None, jobs=1, force=False, quiet=False):
    "Execute and process the notebooks (all, or those named) into `_proc/`; returns the processed notebooks."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    import nbdev.doclinks
    cfg = get_config()
    nbs, proc = Path(cfg.nbs_path), Path(cfg.config_path)/'_proc'
    lib = lib_key(cfg)
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    proc.mkdir(exist_ok=True)
    for f in nbs.iterdir():   # the project files: _quarto.yml, nbdev.yml, sidebar.yml, styles.css, ...
        if f.is_file() and f.suffix != '.ipynb' and not f.name.startswith('.'): shutil.copy2(f, proc/f.name)
    srcs = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    if names: srcs = [p for p in srcs if p.stem in names or p.name in names]
    todo = [p for p in srcs if force or stored_key(proc/p.name) != nb_key(p, lib)]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(cfg.config_path), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}
    # notebooks run side by side share the cores: each gets cores // jobs threads, since more threads than cores make
    # torch's and BLAS's parallel regions wait on one another (an OMP_NUM_THREADS already set is kept)
    env.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    def run(p):
        t = time.time()
        r = subprocess.run([sys.executable, str(EXEC), str(p), str(proc/p.name), nb_key(p, lib)], env=env, capture_output=True, text=True)
        if r.returncode: return p, r.stderr[-6000:]
        if not quiet: print(f'  {p.name}: {time.time() - t:.0f} s', flush=True)
        return p, None
    with ThreadPoolExecutor(max(1, jobs)) as ex: res = list(ex.map(run, todo))
    errs = [(p, e) for p, e in res if e]
    for p, e in errs: print(f'--- {p.name} failed:\n{e}', file=sys.stderr)
    if errs: raise SystemExit(f'{len(errs)} notebook(s) failed: {", ".join(p.name for p, _ in errs)}')
    return [proc/p.name for p in srcs]

KATEX_JS = r"""document.addEventListener('DOMContentLoaded', () => document.querySelectorAll('span.math').forEach(e => {
  const t = e.textContent.trim().replace(/^\\[([]/, '').replace(/\\[)\]]$/, '');
  katex.render(t, e, {displayMode: e.classList.contains('display'), throwOnError: false});
}));"""

def _local_katex(out):
    "Typeset the maths of every page that has some with a local KaTeX (Debian libjs-katex); without it, leave the TeX."
    pages = [p for p in out.rglob('*.html') if '<span class="math' in (t := p.read_text()) or KATEX_CDN.search(t)]
    have = pages and (KATEX_LOCAL/'katex.min.js').exists()
    if have:
        dst = out/'site_libs'/'katex'
        (dst/'fonts').mkdir(parents=True, exist_ok=True)
        for f in ('katex.min.js', 'katex.min.css'): shutil.copyfile(KATEX_LOCAL/f, dst/f)
        for f in (KATEX_LOCAL/'fonts').glob('*.woff2'): shutil.copyfile(f, dst/'fonts'/f.name)
    for p in pages:
        t = KATEX_CDN.sub('', p.read_text())   # smalldocs' links to a CDN, if it wrote them
        if have and '<span class="math' in t:
            rel = os.path.relpath(out/'site_libs'/'katex', p.parent).replace(os.sep, '/')
            tags = (f'<link rel="stylesheet" href="{rel}/katex.min.css"><script defer src="{rel}/katex.min.js"></script>'
                    f'<script>{KATEX_JS}</script>')
            t = t.replace('</head>', tags + '</head>', 1)
        p.write_text(t)

def _localise_links(proc, out, base):
    "Make nbdev's absolute links into the site (`doc_host` + `doc_baseurl` + `output-file`) point at the rendered pages."
    pages = {}
    for nb in proc.glob('*.ipynb'):
        m = re.search(r'output-file:\s*(\S+)', ''.join(json.loads(nb.read_text())['cells'][0]['source']))
        if m: pages[m.group(1)] = nb.stem + '.html'
    pat = re.compile(re.escape(base.rstrip('/')) + r'/([\w.-]+\.html)')
    for p in out.rglob('*.html'):
        t = p.read_text()
        new = pat.sub(lambda m: pages.get(m.group(1), m.group(0)), t)
        if new != t: p.write_text(new)

# an `@import` of a remote stylesheet, whole: `url(...)` to its closing parenthesis (Google Fonts' URLs hold `;`), or a quoted URL
CSS_IMPORT = re.compile(r'@import\s+(?:url\(\s*(["\']?)(?:https?:)?//[^)"\']*\1\s*\)|(["\'])(?:https?:)?//[^"\']*\2)[^;]*;')

def _offline_css(out):
    "Drop the stylesheets' `@import` of web fonts (the Bootswatch themes import Google Fonts): the system fonts stand in."
    imp = CSS_IMPORT
    for p in out.rglob('*.css'):
        t = p.read_text()
        if imp.search(t): p.write_text(imp.sub('', t))

def render(proc, out, pages=None):
    "Render the processed project `proc` into `out`, with Quarto where installed, else smalldocs."
    if out.exists(): shutil.rmtree(out)
    # both honour `output-dir: _docs` of nbdev.yml, as nbdev_docs runs Quarto: in `_proc`, then the folder moved
    quarto = shutil.which('quarto') and not pages
    cmd = ['quarto', 'render', '--no-cache'] if quarto else [str(Path(sys.executable).parent/'smalldocs'), 'render', '--quiet']
    if (proc/'_docs').exists(): shutil.rmtree(proc/'_docs')
    r = subprocess.run(cmd, cwd=proc, capture_output=not quarto, text=True)
    # smalldocs says which Quarto settings it ignores (commonmark, keep-md, output-file): known, not worth a line each
    for l in (r.stderr or '').splitlines():
        if not re.search(r'commonmark is not built|keep-md is ignored|output-file is not read', l): print(l, file=sys.stderr)
    if r.returncode: raise SystemExit(f'{cmd[0]} failed ({r.returncode})')
    shutil.move(str(proc/'_docs'), out)
    import plotly
    shutil.copy2(Path(plotly.__file__).parent/'package_data'/'plotly.min.js', out/'plotly.min.js')
    _local_katex(out)
    _offline_css(out)
    from nbdev.config import get_config
    cfg = get_config()
    if not shutil.which('quarto') or pages: _localise_links(proc, out, cfg.doc_host + cfg.doc_baseurl)
    return out

def build(names=None, out=None, jobs=1, force=False, do_render=True, quiet=False):
    "Execute, process and render the docs; `names` restricts them to some notebooks. Returns the output folder."
    from nbdev.config import get_config
    cfg = get_config()
    t = time.time()
    nbs = process(names, jobs, force, quiet)
    if not quiet: print(f'executed and processed {len(nbs)} notebooks in {time.time() - t:.0f} s', flush=True)
    if not do_render: return nbs[0].parent
    proc = nbs[0].parent
    if names:   # a partial site: render a copy of `_proc` holding only those notebooks
        part = Path(cfg.config_path)/'_proc_part'
        if part.exists(): shutil.rmtree(part)
        shutil.copytree(proc, part, ignore=lambda d, fs: [f for f in fs if f.endswith('.ipynb') and Path(d)/f not in nbs])
        proc = part
    t2 = time.time()
    out = render(proc, Path(out or Path(cfg.config_path)/'_docs'), names)
    if names: shutil.rmtree(proc)
    if not quiet: print(f'rendered into {out} in {time.time() - t2:.0f} s (total {time.time() - t:.0f} s)', flush=True)
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('names', nargs='*', help='only these notebooks (e.g. 04_spectral index)')
    p.add_argument('--no-render', action='store_true', help='stop after `_proc/`')
    p.add_argument('--jobs', type=int, default=1, help='notebooks executed at once')
    p.add_argument('--force', action='store_true', help='execute every notebook again')
    p.add_argument('--out', help='output folder (default _docs)')
    a = p.parse_args()
    os.chdir(ROOT)
    build(a.names or None, a.out, a.jobs, a.force, not a.no_render)

if __name__ == '__main__': main()
