"""JupyterLab in headless Chromium: open the eigenvector-explorer notebook, run it, move the slider with the mouse,
and check that the figure the widget shows changes. And open module notebooks without running them: the outputs saved
in them (tools/save_outputs.py) show, matplotlib images decoded and plotly figures drawn by plotly's JupyterLab
extension, widgets as their static views.

JupyterLab runs on 127.0.0.1, on a free port, with a random token, in a temporary folder holding a copy of
`tests/fixtures/eigen_explorer.ipynb` (the repository's copy is never written), and is stopped by its PID at the end.
"""
import json, os, secrets, signal, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from browser import make_driver, chromium_or_skip, full_screenshot

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT/'tests'/'fixtures'/'eigen_explorer.ipynb'

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait(f, timeout, what, every=0.25):
    "Poll `f` until it returns something truthy; fail saying `what` after `timeout` seconds."
    end = time.time() + timeout
    while time.time() < end:
        try: v = f()
        except (OSError, ValueError, KeyError, TypeError): v = None
        if v: return v
        time.sleep(every)
    pytest.fail(f'timed out after {timeout} s waiting for {what}')

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on 127.0.0.1 with a token: yields (url, token, folder, process); stopped by PID afterwards."
    chromium_or_skip()
    work = tmp_path/'work'; work.mkdir()
    shutil.copy(FIXTURE, work/FIXTURE.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path/'config'), 'JUPYTER_RUNTIME_DIR': str(tmp_path/'runtime'),
           'JUPYTERLAB_SETTINGS_DIR': str(tmp_path/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path/'workspaces'),
           'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
           'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    log = open(tmp_path/'lab.log', 'w')
    cmd = [str(Path(sys.executable).parent/'jupyter-lab'), '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}',
           '--LabApp.expose_app_in_browser=True', '--LabApp.extension_manager=readonly',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'] + (['--allow-root'] if os.geteuid() == 0 else [])
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    def api(path, method='GET'):
        req = urllib.request.Request(f'{url}{path}', method=method, headers={'Authorization': f'token {token}'})
        with urllib.request.urlopen(req, timeout=10) as r: return json.loads(r.read() or b'null')
    try:
        def up():
            if proc.poll() is not None: pytest.fail(f'JupyterLab exited ({proc.returncode}):\n' + (tmp_path/'lab.log').read_text()[-3000:])
            return api('/api/status')
        _wait(up, 120, 'JupyterLab to answer')
        yield url, token, work, proc, api
    finally:
        try:
            for k in api('/api/kernels'): api(f'/api/kernels/{k["id"]}', 'DELETE')
        except Exception: pass
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try: proc.wait(30)
            except subprocess.TimeoutExpired: os.kill(proc.pid, signal.SIGKILL); proc.wait(10)
        log.close()
        print(f'\nJupyterLab log: {tmp_path/"lab.log"}')

KERNEL_IDLE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return k ? k.status : null;
"""
SHOWN = """
const out = document.querySelector('.jupyter-widgets .widget-output img, .jupyter-widgets.widget-output img');
const r = document.querySelector('.widget-slider .widget-readout');
return out && r && out.complete && out.naturalWidth > 0 ? [out.getAttribute('src'), r.textContent.trim()] : null;
"""

def test_slider_changes_the_figure(lab, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    url, token, work, proc, api = lab
    d = make_driver((1400, 1000))
    try:
        d.get(f'{url}/lab/tree/{FIXTURE.name}?token={token}')
        _wait(lambda: d.execute_script(KERNEL_IDLE) == 'idle', 180, 'the notebook to open with an idle kernel')
        d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        src0, read0 = _wait(lambda: d.execute_script(SHOWN), 300, 'the explorer to show its figure')
        full_screenshot(d, tmp_path/'lab_before.png')
        assert read0 == '1'                                    # the explorer starts on the first non-trivial eigenvector
        handle = d.find_element(By.CSS_SELECTOR, '.widget-slider .noUi-handle')
        ActionChains(d).click_and_hold(handle).move_by_offset(80, 0).release().perform()
        src1, read1 = _wait(lambda: (lambda s: s if s and s[0] != src0 else None)(d.execute_script(SHOWN)), 120,
                            'the figure to change after the slider moved')
        full_screenshot(d, tmp_path/'lab_after.png')
        assert read1 != read0 and int(read1) > int(read0), (read0, read1)
        assert (tmp_path/'lab_after.png').stat().st_size > 10_000
        print(f'\nslider {read0} -> {read1}; screenshots in {tmp_path}')
    finally:
        d.quit()

# ---- the outputs saved in the notebooks, opened in JupyterLab without running anything

SAVED = """
const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.node;
if (!nb || !nb.querySelector('.jp-Notebook')) return null;
const imgs = [...nb.querySelectorAll('.jp-OutputArea-output img')].filter(i => !i.closest('.jp-RenderedPlotly'));
const plots = [...nb.querySelectorAll('.jp-RenderedPlotly')];
return {images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
        plotly: plots.length, drawn: plots.filter(p => p.querySelector('.main-svg') && p.getBoundingClientRect().height > 50).length,
        static_widgets: nb.querySelectorAll('.uss-widget-static').length,
        errors: [...nb.querySelectorAll('.jp-OutputArea-output')].filter(o => /Error displaying widget|No renderer/.test(o.textContent)).length};
"""

def _saved_counts(path):
    "Images (not plotly), plotly figures and static widget views among the saved outputs of notebook `path`."
    outs = [o for c in json.loads(path.read_text())['cells'] for o in c.get('outputs', [])]
    data = [o.get('data') or {} for o in outs]
    plotly = sum('application/vnd.plotly.v1+json' in d for d in data)
    images = sum(any(m.startswith('image/') for m in d) and 'application/vnd.plotly.v1+json' not in d for d in data)
    return images, plotly, sum('uss-widget-static' in ''.join(d.get('text/html', '')) for d in data)

# notebooks with saved plotly figures (03, 05) and with matplotlib figures and widgets (07)
@pytest.mark.parametrize('stem', ['05_ot', '07_acg'])
def test_saved_outputs_show_in_lab(lab, tmp_path, stem):
    "A notebook opened in JupyterLab, never run (not trusted): its saved figures show, plotly ones drawn by plotly's extension."
    url, token, work, proc, api = lab
    src = ROOT/'nbs'/f'{stem}.ipynb'
    images, plotly, static = _saved_counts(src)
    if images + plotly == 0: pytest.skip(f'{src.name} has no saved figure: `tools/save_outputs.py {stem}` saves them')
    shutil.copy(src, work/src.name)
    st = tmp_path/'settings'/'@jupyterlab'/'notebook-extension'; st.mkdir(parents=True, exist_ok=True)
    (st/'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))   # every cell in the page
    d = make_driver((1400, 1000))
    try:
        d.get(f'{url}/lab/tree/{src.name}?token={token}')
        got = _wait(lambda: (lambda g: g if g and g['decoded'] >= images and g['drawn'] >= plotly else None)(d.execute_script(SAVED)),
                    180, f'the saved figures of {src.name} to show')
        full_screenshot(d, tmp_path/f'{stem}_lab.png')
        assert got['images'] == got['decoded'] == images and got['plotly'] == got['drawn'] == plotly, (got, images, plotly)
        assert got['static_widgets'] == static and got['errors'] == 0, got
        print(f'\n{src.name} in JupyterLab: {got}; screenshot in {tmp_path}')
    finally:
        d.quit()
