"""The outputs saved in the notebooks of `nbs/` are current: the notebooks as `make nbtest` executed them (`_proc/`,
each cell as nbdev_test runs it) show outputs in the same code cells, with as much in each (whether it prints to
stdout, how many results it displays, its figures and widget views; stderr's warnings and progress bars are left out,
as they can depend on caches), and every notebook's outputs stay under 2 MB. The notebooks are executed once, by
`make nbtest`; this test only reads. After changing a notebook or the library: `make outputs` (nbtest,
tools/save_outputs.py, nbdev_clean).
"""
import json, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import save_outputs as S

NBS = S.notebooks()

@pytest.fixture(scope='module')
def proc():
    p = ROOT/'_proc'
    if not p.is_dir(): pytest.skip('_proc/ is absent: `make nbtest` executes the notebooks into it (`make test` runs it before pytest)')
    return p

@pytest.mark.parametrize('stem', [p.stem for p in NBS])
def test_saved_outputs_are_current(proc, stem, monkeypatch):
    monkeypatch.chdir(ROOT)
    src = ROOT/'nbs'/f'{stem}.ipynb'
    try: S.executed(src); err = None
    except (FileNotFoundError, ValueError) as e: err = str(e)
    if err: pytest.fail(err)
    d = S.differences(src)
    assert not d, (f'{src.name}: the saved outputs are not those of a fresh execution; run `python tools/save_outputs.py {stem}` '
                   'then `nbdev_clean`:\n  ' + '\n  '.join(d))

@pytest.mark.parametrize('stem', [p.stem for p in NBS])
def test_saved_outputs_are_small(stem):
    n = S.output_bytes(json.loads((ROOT/'nbs'/f'{stem}.ipynb').read_text()))
    assert n < S.MAX_BYTES, f'{stem}.ipynb: outputs of {n:,} bytes, over {S.MAX_BYTES:,}'

# ---- the tool itself, on a small notebook (no execution)

def _nb(cells, **meta):
    return {'cells': cells, 'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}, **meta},
            'nbformat': 4, 'nbformat_minor': 5}

def _code(i, src, outputs=()):
    return {'cell_type': 'code', 'id': i, 'metadata': {}, 'source': [src], 'execution_count': None, 'outputs': list(outputs)}

PNG = {'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': 'iVBORw0KGgo=', 'text/plain': ['<Figure>']}}
PLOT = {'output_type': 'display_data', 'metadata': {}, 'data': {'application/vnd.plotly.v1+json': {'data': [], 'layout': {}},
                                                                  'text/html': ['<script src="plotly.min.js"></script>']}}
WIDGET = {'output_type': 'display_data', 'metadata': {}, 'data': {
    'application/vnd.jupyter.widget-view+json': {'model_id': 'abc', 'version_major': 2, 'version_minor': 0},
    'text/html': ['<div class="uss-widget-static">...</div>'], 'text/plain': ['VBox()']}}

def test_save_writes_executed_outputs_by_cell_id(tmp_path):
    src = tmp_path/'x.ipynb'
    old = {'output_type': 'stream', 'name': 'stdout', 'text': ['old\n']}
    src.write_text(json.dumps(_nb([_code('a', 'fig', [old]), _code('b', '#| slow\nrun()', [old]), _code('c', 'w'),
                                   {'cell_type': 'markdown', 'id': 'm', 'metadata': {}, 'source': ['# t']}])))
    outs = {'a': [PNG, PLOT], 'c': [{**WIDGET, 'output_type': 'execute_result', 'execution_count': 3}]}
    assert S.save(src, outs) and not S.save(src, outs)             # written once, then unchanged
    nb = json.loads(src.read_text())
    a, b, c = nb['cells'][:3]
    assert a['outputs'][0] == PNG and a['outputs'][1]['data'] == {'application/vnd.plotly.v1+json': {'data': [], 'layout': {}}}
    assert S.figures(a['outputs']) == 2                             # a plotly figure as its mimetype only: the HTML is the site's
    assert b['outputs'] == [old]                                    # not executed (slow): kept as it was
    d = c['outputs'][0]
    assert d['execution_count'] is None and 'application/vnd.jupyter.widget-view+json' not in d['data']   # the static view stays
    assert S.widgets(c['outputs']) == 1 and 'text/html' in d['data']
    assert S.summary({'a': a['outputs'], 'b': [], 'c': c['outputs']}) == {'a': (False, 2, 2, 0), 'c': (False, 1, 0, 1)}
    err = {'output_type': 'stream', 'name': 'stderr', 'text': ['warning\n']}
    assert S.summary({'a': [err], 'b': [old, err, PNG]}) == {'b': (True, 1, 1, 0)}   # stderr (warnings, progress) is left out

def test_saved_text_has_no_local_paths():
    import sysconfig
    warn = {'output_type': 'stream', 'name': 'stderr', 'text': [sysconfig.get_paths()['purelib'] + '/torch/x.py:3: UserWarning\n',
                                                                   f'{ROOT}/uss_nb/core.py:1: w\n']}
    assert S.saved_view([warn])[0]['text'] == ['site-packages/torch/x.py:3: UserWarning\n', 'uss_nb/core.py:1: w\n']
    import tempfile
    msg = {'output_type': 'stream', 'name': 'stdout', 'text': [f'not in {Path.home()}/.cache/torch/hub; bad: {tempfile.gettempdir()}/tmpab_12x9/cut.jpg\n']}
    assert S.saved_view([msg])[0]['text'] == ['not in ~/.cache/torch/hub; bad: <tmp>/cut.jpg\n']      # home and temporary folders
    out = {'output_type': 'stream', 'name': 'stdout', 'text': ['a\n', '\x1b[2K\r', '\n', '\x1b[1mb\x1b[0m\n']}
    assert S.saved_view([out])[0]['text'] == ['a\n', '\n', '\x1b[1mb\x1b[0m\n']     # clear_output's codes go, text stays

def test_large_png_figures_are_saved_as_jpeg():
    import base64, io
    import numpy as np
    from PIL import Image
    def png(a):
        buf = io.BytesIO(); Image.fromarray(a).save(buf, 'PNG'); return base64.b64encode(buf.getvalue()).decode()
    photo = png(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    small = png(np.zeros((30, 40, 3), np.uint8))
    outs = [{'output_type': 'display_data', 'metadata': {'image/png': {'width': 400}}, 'data': {'image/png': photo, 'text/plain': ['<Figure>']}},
            {'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': small}}]
    big, tiny = S.saved_view(outs)
    assert set(big['data']) == {'image/jpeg', 'text/plain'} and big['metadata'] == {'image/jpeg': {'width': 400}}
    assert Image.open(io.BytesIO(base64.b64decode(big['data']['image/jpeg']))).size == (400, 300)
    assert tiny['data'] == {'image/png': small} and S.figures([big, tiny]) == 2

def test_save_refuses_outputs_over_the_limit(tmp_path, monkeypatch):
    src = tmp_path/'x.ipynb'
    src.write_text(json.dumps(_nb([_code('a', 'fig')])))
    monkeypatch.setattr(S, 'MAX_BYTES', 100)
    with pytest.raises(ValueError, match='over'): S.save(src, {'a': [PNG, PNG]})

def test_nbdev_clean_keeps_saved_outputs(tmp_path):
    "settings.ini's `clear_all = False`: nbdev_clean leaves the saved outputs (figures, widget views) as they are."
    from nbdev.clean import clean_nb
    from nbdev.config import get_config
    cfg = get_config(path=ROOT)
    assert not cfg.clear_all
    src = tmp_path/'x.ipynb'
    src.write_text(json.dumps(_nb([_code('a', 'fig'), _code('c', 'w')])))
    S.save(src, {'a': [PNG, PLOT], 'c': [WIDGET]})
    nb = json.loads(src.read_text())
    before = [c['outputs'] for c in nb['cells']]
    clean_nb(nb, cfg.clear_all, cfg.get('allowed_metadata_keys').split(), cfg.get('allowed_cell_metadata_keys').split(), cfg.clean_ids)
    assert [c['outputs'] for c in nb['cells']] == before

def test_the_execution_key_ignores_saved_outputs(tmp_path):
    "Saving outputs does not make `_proc/` stale: a notebook's key depends on its cells' sources, not their outputs."
    import build_docs as B
    src = tmp_path/'x.ipynb'
    src.write_text(json.dumps(_nb([_code('a', 'fig')])))
    k = B.nb_key(src, 'lib')
    S.save(src, {'a': [PNG]})
    assert B.nb_key(src, 'lib') == k and B.nb_key(src, 'other') != k
    src.write_text(json.dumps(_nb([_code('a', 'fig2')])))
    assert B.nb_key(src, 'lib') != k

def test_differences_per_cell(tmp_path, monkeypatch):
    "Cells compared by id; cells nbdev adds (`show_doc` of undocumented exports) and cells not executed are left out."
    src = tmp_path/'x.ipynb'
    src.write_text(json.dumps(_nb([_code('a', 'fig', [PNG]), _code('b', 'print(1)'), _code('s', '#| slow\nrun()', [PNG])])))
    ran = {'a': [PNG], 'b': [], 'added': [{'output_type': 'execute_result', 'data': {'text/markdown': ['doc']}, 'metadata': {}}]}
    monkeypatch.setattr(S, 'executed', lambda p: ran)
    assert S.differences(src) == []
    ran['b'] = [{'output_type': 'stream', 'name': 'stdout', 'text': ['1\n']}]
    assert S.differences(src) == ['cell b: executed (True, 0, 0, 0), saved no output (stdout, results, figures, widgets)']
