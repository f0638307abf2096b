"The installed command-line entry points, run as a user runs them (console scripts of the project's environment)."
import configparser, importlib, json, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent

def entry_points() -> dict:
    "Command -> (module, function): the console scripts settings.ini declares."
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    return {n.strip(): tuple(t.strip().split(':')) for n, t in (l.split('=') for l in cfg['DEFAULT']['console_scripts'].split())}

def command(name) -> list:
    "The installed console script `name` when it runs the entry point settings.ini declares; else (an install of another checkout) that entry point through this interpreter."
    mod, fn = entry_points()[name]
    script = BIN/name
    if script.exists() and f'from {mod} import {fn}' in script.read_text(errors='replace'): return [str(script)]
    return [sys.executable, '-c', f'import sys; from {mod} import {fn}; sys.argv[0] = {name!r}; sys.exit({fn}())']

def run(*args, **kw):
    return subprocess.run([*command(args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=600, **kw)

def test_entry_points_exist():
    "`uss` and `uss-bench` name functions of the command-line module."
    eps = entry_points()
    assert set(eps) == {'uss', 'uss-bench'}
    for mod, fn in eps.values(): assert callable(getattr(importlib.import_module(mod), fn)), (mod, fn)

def test_uss_help_lists_subcommands():
    r = run('uss', '--help')
    assert r.returncode == 0 and 'demo' in r.stdout

def test_unknown_subcommand_lists_valid_ones():
    r = run('uss', 'dmeo')
    assert r.returncode == 2 and 'valid subcommands' in r.stderr

def test_demo_writes_overlays(tmp_path):
    out = tmp_path/'outputs'
    r = run('uss', 'demo', '--out', out, '--limit', 2, '--quiet')
    assert r.returncode == 0, r.stderr
    summary = json.loads((out/'summary.json').read_text())
    assert [i['name'] for i in summary['images']] == ['astronaut', 'camera']
    for i in summary['images']:
        assert (out/i['overlay']).stat().st_size > 1000 and (out/i['eigen']).stat().st_size > 1000
        assert (out/i['labels']).exists() and i['clusters']
    assert (out/'clusters.png').stat().st_size > 1000
    assert (out/'summary.md').exists() and (out/'summary.html').exists()
    from PIL import Image
    import torch
    for i in summary['images']:
        assert Image.open(out/i['labels']).mode == 'P'                          # palette PNG: a viewer shows the clusters
        ov = Image.open(out/i['overlay']); assert ov.size[1] > i['size'][0]     # the legend strip under the photo
    page = (out/'summary.html').read_text()
    assert '`' not in page and '<style>' in page and f'torch {torch.__version__}' in page
    assert ('CUDA not available' in page) == (not torch.cuda.is_available())

def test_demo_refuses_unwritable_output(tmp_path):
    f = tmp_path/'file'; f.write_text('x')
    r = run('uss', 'demo', '--out', f/'sub', '--limit', 1)
    assert r.returncode == 2 and 'not writable' in r.stderr

def test_bench_prints_one_json_line():
    r = run('uss-bench', 'read', 'n=3', 'repeats=1')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res['ratio'] > 0 and res['ours_ms'] > 0 and res['ref_ms'] > 0

def test_bench_unknown_name():
    r = run('uss-bench', 'eigenn')
    assert r.returncode == 2 and 'valid names' in r.stderr

def test_demo_refuses_unknown_fit_on(tmp_path):
    r = run('uss', 'demo', '--out', tmp_path/'out', '--limit', 1, '--fit_on', 'segmnets')
    assert r.returncode == 2 and 'valid names' in r.stderr and 'pixels, dsm' in r.stderr
    assert not (tmp_path/'out'/'summary.json').exists()

def test_head_omh_and_consensus_options_are_checked_before_any_work():
    "`--head_init`, `--omh_weight` and `--consensus` are in each subcommand's help; a bad value, or one the pipeline does not use, is refused (status 2)."
    for cmd in ('eval', 'fit', 'segment'):
        r = run('uss', cmd, '--help')
        assert r.returncode == 0 and all(o in r.stdout for o in ('--head_init', '--omh_weight', '--consensus')), r.stdout
    r = run('uss', 'eval', '--pipeline', 'stego', '--head_init', 'pcaa')
    assert r.returncode == 2 and "head_init: unknown name 'pcaa'; valid names: pca, random" in r.stderr, r.stderr
    r = run('uss', 'fit', '--data', 'camvid/val', '--pipeline', 'stego', '--omh_weight', 0.5)
    assert r.returncode == 2 and 'omh_weight: applies to the +omh pipelines' in r.stderr, r.stderr
    r = run('uss', 'segment', 'x.png', '--pipeline', 'kmeans', '--consensus', -1)
    assert r.returncode == 2 and 'consensus: must be an integer >= 0, got -1' in r.stderr, r.stderr

# ---- your own labelled data, saved results, original resolution, --device, --version, --help

def camvid_or_skip():
    from uss_nb.data import data_root
    root = data_root()/'camvid'
    if not (root/'val'/'images').is_dir(): pytest.skip(f'CamVid is not under {data_root()} ($USS_DATA)')
    return root

def labelled_folder(dst, n=3):
    "A folder of `n` CamVid validation photos in the layout `uss eval --data DIR` reads: images/, labels/, classes.txt."
    import shutil
    cv = camvid_or_skip()
    for sub in ('images', 'labels'): (dst/sub).mkdir(parents=True)
    for p in sorted((cv/'val'/'images').iterdir())[:n]:
        shutil.copy(p, dst/'images'/p.name); shutil.copy(cv/'val'/'labels'/f'{p.stem}.png', dst/'labels')
    shutil.copy(cv/'classes.txt', dst)
    return dst

def env(tmp_path): import os; return {**os.environ, 'USS_CACHE': str(tmp_path/'cache')}

def test_eval_own_labelled_folder_saves_results(tmp_path):
    "`uss eval --data DIR --out OUT`: scores on DIR's labels; label maps at the labels' resolution, metrics.json, figures."
    from PIL import Image
    mine = labelled_folder(tmp_path/'mine')
    r = run('uss', 'eval', '--data', mine, '--pipeline', 'kmeans', '--out', tmp_path/'res', '--quiet', '--json', '--device', 'cpu', env=env(tmp_path))
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout.strip().splitlines()[-1])
    m = json.loads((tmp_path/'res'/'metrics.json').read_text())
    assert m['miou'] == line['miou'] and 0 < m['miou'] <= 100 and m['config']['pipeline'] == 'kmeans'
    assert len(m['mapping']) == 11 and len(m['per_class']) == 11 and m['class_names'][0] == 'Sky'
    assert len(m['confusion']) == 11 and sum(map(sum, m['confusion'])) == sum(c['n_pixels'] for c in m['per_class'])
    for p in (mine/'images').iterdir():
        lab = Image.open(tmp_path/'res'/'labels'/f'{p.stem}.png')
        assert lab.mode == 'P' and lab.size == Image.open(p).size == (480, 360)
    for f in ('confusion.png', 'per_class_iou.png'): assert Image.open(tmp_path/'res'/f).size[0] > 300
    r = run('uss', 'eval', '--data', mine/'images', '--pipeline', 'kmeans', '--quiet', '--json', env=env(tmp_path))   # the images/ folder itself
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])['miou'] == line['miou'], r.stderr

def test_eval_more_than_255_clusters_writes_16_bit_labels(tmp_path):
    from PIL import Image
    mine = labelled_folder(tmp_path/'mine', n=2)
    r = run('uss', 'eval', '--data', mine, '--pipeline', 'kmeans', '--fit_on', 'pixels', '--refine', 'none', '--n_clusters', 300, '--n_init', 1, '--out', tmp_path/'res', '--quiet', env=env(tmp_path))
    assert r.returncode == 0, r.stderr
    lab = Image.open(next((tmp_path/'res'/'labels').iterdir()))
    assert lab.mode.startswith('I') and lab.size == (480, 360)
    import numpy as np
    assert np.asarray(lab).max() > 255

@pytest.mark.parametrize('layout', ['no labels', 'no classes', 'missing label', 'bad id'])
def test_eval_refuses_bad_labelled_data_before_extracting(tmp_path, layout):
    "Each problem of a labelled folder is reported in seconds, before any feature is extracted (no cache written)."
    import time
    from PIL import Image
    import numpy as np
    mine = labelled_folder(tmp_path/'mine')
    first = sorted((mine/'labels').iterdir())[0]
    data, want = mine, None
    if layout == 'no labels':
        import shutil; shutil.rmtree(mine/'labels'); data, want = mine/'images', 'has no labels to score against'
    if layout == 'no classes': (mine/'classes.txt').unlink(); want = 'classes.txt'
    if layout == 'missing label': first.unlink(); want = 'no such file'
    if layout == 'bad id': Image.fromarray(np.full((360, 480), 40, np.uint8)).save(first); want = first.name
    t = time.time()
    r = run('uss', 'eval', '--data', data, '--pipeline', 'kmeans', '--quiet', env=env(tmp_path))
    assert r.returncode == 2 and want in r.stderr, r.stderr
    assert not (tmp_path/'cache').exists() and time.time() - t < 30

def test_segment_returns_original_resolution(tmp_path):
    "Features at 160 pixels, outputs at the photo's 480x360; the label map is a palette PNG."
    from PIL import Image
    cv = camvid_or_skip()
    photo = sorted((cv/'val'/'images').iterdir())[0]
    r = run('uss', 'segment', photo, '--out', tmp_path/'seg', '--size', 160, '--n_clusters', 3, '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    lab = Image.open(tmp_path/'seg'/f'{photo.stem}_labels.png')
    assert lab.size == (480, 360) and lab.mode == 'P'
    ov = Image.open(tmp_path/'seg'/f'{photo.stem}_overlay.png')
    assert ov.size[0] == 480 and ov.size[1] > 360            # the legend below the photo

def test_uss_help_describes_each_subcommand():
    r = run('uss', '--help')
    lines = r.stdout.splitlines()
    for cmd in ('demo', 'eval', 'fit', 'segment', 'train'):
        line = next(l for l in lines if l.strip().startswith(cmd + ' '))
        assert len(line.split(None, 1)[1]) > 20, line
    assert '--device' in r.stdout and '--version' in r.stdout

def test_uss_version_reports_the_torch_build():
    import torch, uss_nb
    r = run('uss', '--version')
    assert r.returncode == 0 and uss_nb.__version__ in r.stdout and torch.__version__ in r.stdout
    assert ('CUDA not available' in r.stdout) == (not torch.cuda.is_available())

@pytest.mark.parametrize('cmd', ['demo', 'eval', 'fit', 'segment', 'train'])
def test_every_subcommand_takes_device(cmd):
    r = run('uss', cmd, '--help')
    assert r.returncode == 0 and '--device DEVICE' in r.stdout
    r = run('uss', cmd, *(['x.png'] if cmd in ('segment', 'train') else []), '--device', 'tpu9')
    assert r.returncode == 2 and "unknown device 'tpu9'" in r.stderr

def test_bench_takes_flag_value_and_key_value():
    for args in (['--n', '3', '--repeats', '1'], ['n=3', 'repeats=1'], ['--n=3', 'repeats=1']):
        r = run('uss-bench', 'read', *args)
        assert r.returncode == 0, (args, r.stderr)
        assert json.loads(r.stdout.strip().splitlines()[-1])['ours_ms'] > 0

# ---- presets, uss fit and uss segment --model

def test_presets_are_package_data():
    "The presets are shipped inside the package and named in its packaging (setup.py's package_data, MANIFEST.in)."
    from uss_nb.pipelines import preset_dir, preset_names
    root = Path(__file__).resolve().parent.parent
    assert preset_names() == ['default', 'objects', 'street'] and preset_dir() == root/'uss_nb'/'presets'
    assert "'presets/*.json'" in (root/'setup.py').read_text() and 'uss_nb/presets *.json' in (root/'MANIFEST.in').read_text()

def test_eval_preset_and_options_write_the_resolved_config(tmp_path):
    "`uss eval --preset objects` with options given: they replace the preset's; config.json in --out holds every setting."
    from uss_nb.pipelines import load_preset, EvalConfig
    import dataclasses
    mine = labelled_folder(tmp_path/'mine', n=2)
    r = run('uss', 'eval', '--data', mine, '--preset', 'objects', '--backbone', 'tiny_vit', '--n_segments', 8, '--eigenvectors', 10,
            '--refine', 'none', '--out', tmp_path/'res', '--quiet', env=env(tmp_path))
    assert r.returncode == 0, r.stderr
    want = load_preset('objects').replace(backbone='tiny_vit', n_segments=8, k=10, refine='none', n_clusters=11)
    assert load_preset(tmp_path/'res'/'config.json') == want
    assert json.loads((tmp_path/'res'/'metrics.json').read_text())['files']['config'] == 'config.json'

def test_fit_then_segment_with_the_model(tmp_path, monkeypatch):
    """`uss fit` on 4 camvid/val photos (the street preset, cheaper features and 2 CRF rounds), `uss segment --model` on 2 others:
    masks at the photos' own size, labels those of the evaluation's assignment with the model's centres."""
    import dataclasses, numpy as np, torch
    from PIL import Image, ImageOps
    from uss_nb import pipelines as P
    from uss_nb.core import load
    cv = camvid_or_skip()
    r = run('uss', 'fit', '--data', 'camvid/val', '--limit', 4, '--preset', 'street', '--backbone', 'tiny_vit', '--scales', 1,
            '--size', 180, '--crf_rounds', 2, '--out', tmp_path/'street.pt', '--quiet', env=env(tmp_path))
    assert r.returncode == 0, r.stderr
    model = P.load_model(tmp_path/'street.pt')
    assert (model['kind'], model['assign'], model['n_clusters'], model['n_fitted']) == ('kmeans', 'scores', 11, 4)
    assert model['features'] == dict(backbone='tiny_vit', scales=[1.0], power=1.0, photometric='channels')
    assert json.loads((tmp_path/'street.json').read_text())['config']['crf_rounds'] == 2
    photos = sorted((cv/'val'/'images').iterdir())[10:12]
    r = run('uss', 'segment', *photos, '--model', tmp_path/'street.pt', '--size', 160, '--out', tmp_path/'seg', '--quiet', env=env(tmp_path))
    assert r.returncode == 0, r.stderr
    cfg = P.model_config(model)
    assert P.load_preset(tmp_path/'seg'/'config.json') == cfg
    # the evaluation's own k-means pipeline on the same photos, its fit replaced by the model's centres
    monkeypatch.setattr(P, 'crf_refit', lambda *a, **kw: model['centres'])
    ds = P.photometric_view(P.image_dataset(photos, 160), cfg.photometric)
    feats = P.dense_features(ds, cfg, cache=False)
    for i, grid, scores in P.pipeline_maps(ds, feats, cfg, 11):
        image0 = ds.load_image(i)[0]
        want = P.at_resolution(ds[i][0], grid, scores, cfg, 11, image0.shape[-2:])
        with Image.open(photos[i]) as im: w, h = ImageOps.exif_transpose(im).size
        got = np.asarray(Image.open(tmp_path/'seg'/f'{photos[i].stem}_labels.png'))
        assert got.shape == (h, w) == (360, 480)
        assert (got == want.numpy()).all()

def test_segment_refuses_a_model_under_other_features(tmp_path):
    "Other features than the model's (--backbone), another setting of its fit (--n_clusters) or --preset beside --model: exit 2 before any output."
    from uss_nb.pipelines import fit_model, save_model, EvalConfig, image_dataset
    import skimage.data
    photo = Path(skimage.data.data_dir)/'coffee.png'
    save_model(fit_model(image_dataset([photo], 64), EvalConfig(pipeline='kmeans', backbone='tiny_vit', n_clusters=3), progress=False), tmp_path/'m.pt')
    for opts, words in ((['--backbone', 'vgg19'], "backbone='tiny_vit' in the model, 'vgg19' asked for"),
                        (['--scales', '1,2'], 'scales=[1.0] in the model, [1.0, 2.0] asked for'),
                        (['--n_clusters', 4], 'n_clusters=3 in the model, 4 asked for'),
                        (['--preset', 'street'], 'give --model without --preset')):
        r = run('uss', 'segment', photo, '--model', tmp_path/'m.pt', '--out', tmp_path/'out', *opts)
        assert r.returncode == 2 and words in r.stderr, (opts, r.stderr)
    assert not (tmp_path/'out').exists()
    r = run('uss', 'segment', photo, '--model', tmp_path/'m.pt', '--refine', 'crf', '--size', 64, '--out', tmp_path/'out', '--quiet')
    assert r.returncode == 0, r.stderr                                           # the refinement may differ from the fit's
