"""Reliability: bad input, numerics, interruption and untrusted files (issue 10).

Every case here either converts its input as documented or fails with a `BadInputError` that names the file or
argument; numeric routines never return NaN or inf; an interrupted run resumes to the same result; nothing that
loads a file executes code from it. Data are tiny so that the whole file runs in about a minute on two busy cores.
"""
import io, os, re, sys, json, math, time, zlib, pickle, signal, struct, warnings, subprocess, textwrap
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from hypothesis import given, settings, HealthCheck, strategies as st

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's uss_nb, not another install

from uss_nb.core import BadInputError, load, save, load_json, save_json, config_hash
from uss_nb.data import read_image, read_label, ImageFolder, SplitFolder, SegDataset, InputWarning
from uss_nb.backbones import tiny_vit, get_backbone
from uss_nb.features import RandomImages, extract_features, read_entry, entry_path, cache_folder, feature_config
from uss_nb.ot import sinkhorn, OTC
from uss_nb.kmeans import KMeans
from uss_nb.spectral import spectral_eigs, feature_affinity, degrees
from uss_nb.stego import stego_loss, StegoConfig, ClusterProbe, train_stego
from uss_nb.attention_clustering import abc_loss, coverage_loss, disjointness_loss, ABC
from uss_nb.acg import modularity_loss, ACG, ACGConfig, train_acg
from uss_nb.metrics import Confusion, evaluate, score
from uss_nb.pipelines import EvalConfig, evaluate_pipeline

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)

def child_env(**kw):
    "Environment for a child Python process that imports this checkout's uss_nb with one thread."
    return {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', **kw}

def finite(*ts): return all(bool(torch.isfinite(t).all()) for t in ts)

# ---------------------------------------------------------------------------------------------------------------
# Bad images: each one is converted as documented or refused with an error naming the file

def _png_header_only(w, h):
    "A PNG that declares w x h pixels but holds no image data (a decompression bomb's header)."
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IEND', b'')

def _jpeg_bytes(im, **kw): b = io.BytesIO(); im.save(b, 'JPEG', **kw); return b.getvalue()
def _png_bytes(im): b = io.BytesIO(); im.save(b, 'PNG'); return b.getvalue()

def _make(tmp, name, data):
    p = tmp/name
    if isinstance(data, Image.Image): data.save(p)
    else: p.write_bytes(data)
    return p

REFUSED = {   # file name -> (content maker, words the error must contain besides the file name)
    'zero.png': (lambda: b'', 'empty file'),
    'trunc.jpg': (lambda: _jpeg_bytes(Image.fromarray(RGB))[:300], 'truncated'),                  # inside the header
    'half.jpg': (lambda: (lambda b: b[:len(b) // 2])(_jpeg_bytes(Image.fromarray(RGB))), 'truncated'),  # inside the data
    'trunc.png': (lambda: _png_bytes(Image.fromarray(RGB))[:200], 'truncated'),
    'header.png': (lambda: _png_bytes(Image.fromarray(RGB))[:20], 'not a readable image'),
    'text.jpg': (lambda: b'hello, not an image', 'not a readable image'),
    'one.png': (lambda: Image.new('RGB', (1, 1)), 'smaller than min_size'),
    'bomb.png': (lambda: _png_header_only(30000, 30000), 'decompression-bomb'),
    'nan.tif': (lambda: Image.fromarray(np.full((20, 20), np.nan, np.float32)), 'NaN'),
}

@pytest.mark.parametrize('name', list(REFUSED))
def test_bad_image_is_refused_naming_the_file(tmp_path, name):
    make, words = REFUSED[name]
    p = _make(tmp_path, name, make())
    with pytest.raises(BadInputError) as e: read_image(p)
    assert str(p) in str(e.value) and words.lower() in str(e.value).lower(), str(e.value)

def test_missing_file_and_folder(tmp_path):
    for p in (tmp_path/'nope.png', tmp_path):
        with pytest.raises(BadInputError, match='no such file'): read_image(p)

def _alpha(): a = np.dstack([RGB, np.where(np.arange(48) < 24, 0, 255).astype(np.uint8)[None].repeat(40, 0)]); return Image.fromarray(a, 'RGBA')

CONVERTED = {  # file name -> (content maker, expected (3,H,W) float tensor)
    'grey.png': (lambda: Image.fromarray(RGB[..., 0]), lambda: torch.tensor(RGB[..., 0] / 255.).float().expand(3, 40, 48)),
    'grey16.png': (lambda: Image.fromarray((RGB[..., 0].astype(np.uint16) * 257)), lambda: torch.tensor(RGB[..., 0].astype(np.uint16) * 257 / 65535.).float().expand(3, 40, 48)),
    'bits.png': (lambda: Image.fromarray(RGB[..., 0] > 127), lambda: torch.tensor(RGB[..., 0] > 127).float().expand(3, 40, 48)),
    'palette.png': (lambda: Image.fromarray(RGB).convert('P'), lambda: torch.tensor(np.asarray(Image.fromarray(RGB).convert('P').convert('RGB')) / 255.).float().permute(2, 0, 1)),
    'cmyk.jpg': (lambda: Image.fromarray(RGB).convert('CMYK'), None),  # checked against Pillow's own conversion below
    'alpha.png': (_alpha, lambda: torch.where(torch.arange(48) < 24, 1., torch.tensor(RGB / 255.).float().permute(2, 0, 1))),
    'rgb.bmp': (lambda: Image.fromarray(RGB), lambda: torch.tensor(RGB / 255.).float().permute(2, 0, 1)),
    'rgb.webp': (lambda: Image.fromarray(RGB), None),
}

@pytest.mark.parametrize('name', list(CONVERTED))
def test_image_modes_are_converted_as_documented(tmp_path, name):
    make, expect = CONVERTED[name]
    p = _make(tmp_path, name, make())
    with warnings.catch_warnings(): warnings.simplefilter('error'); x = read_image(p)   # no warning for these
    assert x.shape == (3, 40, 48) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    if expect is not None: torch.testing.assert_close(x, expect(), atol=1e-6, rtol=0)
    if name == 'cmyk.jpg':
        with Image.open(p) as im: ref = torch.tensor(np.asarray(im.convert('RGB')) / 255.).float().permute(2, 0, 1)
        torch.testing.assert_close(x, ref)

def test_wrong_extension_is_read_with_a_warning(tmp_path):
    p = _make(tmp_path, 'photo.png', _jpeg_bytes(Image.fromarray(RGB)))
    with pytest.warns(InputWarning, match=re.escape(str(p)) + '.*JPEG'): x = read_image(p)
    torch.testing.assert_close(x, read_image(_make(tmp_path, 'photo.jpg', p.read_bytes())))

def test_exif_rotation_is_applied(tmp_path):
    ex = Image.Exif(); ex[0x0112] = 6       # rotated 90 degrees: stored 48 wide, shown 48 high
    Image.fromarray(RGB).save(tmp_path/'rot.jpg', exif=ex.tobytes(), quality=95)
    assert read_image(tmp_path/'rot.jpg').shape == (3, 48, 40)
    assert read_image(tmp_path/'rot.jpg', exif=False).shape == (3, 40, 48)

@pytest.mark.parametrize('fmt', ['JPEG', 'PNG'])
def test_huge_image_is_shrunk_to_the_pixel_budget(tmp_path, fmt):
    p = tmp_path/f'huge.{fmt.lower()}'
    im = Image.new('L', (10000, 10000), 128) if fmt == 'PNG' else Image.new('RGB', (10000, 10000), (128, 128, 128))
    im.save(p, fmt); del im
    with pytest.warns(InputWarning, match=re.escape(str(p)) + '.*10000x10000.*max_pixels'):
        x = read_image(p, max_pixels=128 * 128)
    assert x.shape == (3, 128, 128) and abs(float(x.mean()) - 128 / 255) < 0.01

# ---------------------------------------------------------------------------------------------------------------
# A folder with some bad files: the good ones are processed, the bad ones listed at the end; strict fails instead

@pytest.fixture(scope='module')
def mixed_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('mixed')
    for i in range(3): Image.fromarray(np.roll(RGB, i, 0)).save(d/f'good{i}.png')
    (d/'empty.jpg').write_bytes(b'')
    (d/'cut.jpg').write_bytes(_jpeg_bytes(Image.fromarray(RGB))[:300])
    (d/'one.png').write_bytes(_png_bytes(Image.new('RGB', (1, 1))))
    (d/'readme.txt').write_text('ignored: not an image extension')
    return d

def test_folder_with_bad_files(mixed_folder):
    ds = ImageFolder(mixed_folder)
    assert len(ds) == 6                        # readme.txt is not listed
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fs = extract_features(tiny_vit(), ds, progress=False)
    assert fs.names == ['good0', 'good1', 'good2'] and sorted(fs.skipped) == ['cut', 'empty', 'one']
    msgs = [str(x.message) for x in w if issubclass(x.category, InputWarning)]
    assert len(msgs) == 1 and all(f in msgs[0] for f in ('cut.jpg', 'empty.jpg', 'one.png'))
    ref = extract_features(tiny_vit(), SegDataset([mixed_folder/f'good{i}.png' for i in range(3)]), progress=False)   # the good files alone
    assert all(torch.equal(fs[n].feats, ref[n].feats) for n in fs.names)
    with pytest.raises(BadInputError, match='cut.jpg'): extract_features(tiny_vit(), ds, strict=True, progress=False)

def test_folder_with_bad_files_in_loader_workers(mixed_folder):
    "In a worker process the error still arrives as a BadInputError naming the file (it must survive pickling)."
    ds = ImageFolder(mixed_folder)
    with pytest.raises(BadInputError, match='cut.jpg'): extract_features(tiny_vit(), ds, strict=True, num_workers=1, progress=False)
    with warnings.catch_warnings(): warnings.simplefilter('ignore', InputWarning); fs = extract_features(tiny_vit(), ds, num_workers=1, progress=False)
    assert fs.names == ['good0', 'good1', 'good2'] and len(fs.skipped) == 3
    assert pickle.loads(pickle.dumps(BadInputError('a.png', 'bad'))).args == ('a.png: bad',)

def _split(root, n=3, bad=True, all_ignore=False):
    "A CamVid-style split `root/camvid/val` of `n` 48x64 images with 2-class labels; with `bad`, three broken items more."
    d = root/'camvid'; (d/'val'/'images').mkdir(parents=True); (d/'val'/'labels').mkdir(parents=True)
    (d/'classes.txt').write_text('sky\nground\n')
    lab = np.full((48, 64), 255, np.uint8)
    if not all_ignore: lab[:24] = 0; lab[24:] = 1
    for i in range(n + 3 * bad):
        Image.fromarray(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(d/'val'/'images'/f'im{i}.png')
        Image.fromarray(lab).save(d/'val'/'labels'/f'im{i}.png')
    if bad:
        (d/'val'/'images'/f'im{n}.png').write_bytes(b'')
        Image.fromarray(np.full((48, 64), 9, np.uint8)).save(d/'val'/'labels'/f'im{n + 1}.png')   # id 9 of 2 classes
        Image.fromarray(lab[:40]).save(d/'val'/'labels'/f'im{n + 2}.png')                          # wrong size
    return d

def test_uss_eval_lists_bad_files_and_strict_fails(tmp_path, monkeypatch, capsys):
    "`uss eval` (its entry point, in this process to save an interpreter start) on a split with three bad items."
    from uss_nb.cli import main
    _split(tmp_path)
    monkeypatch.setenv('USS_DATA', str(tmp_path)); monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    cmd = ['uss', 'eval', '--data', 'camvid/val', '--pipeline', 'kmeans', '--backbone', 'tiny_vit', '--quiet']
    monkeypatch.setattr(sys, 'argv', cmd + ['--json']); main()
    out, err = capsys.readouterr()
    res = json.loads(out.strip().splitlines()[-1])
    assert res['n_scored'] == 3 and sorted(res['skipped']) == ['im3', 'im4', 'im5']
    tail = err.strip().splitlines()
    assert '3 of 6 images could not be read' in tail[-4] and all(f'im{i}.png' in tail[-3 + i - 3] for i in (3, 4, 5)), err
    assert sum(c['n_pixels'] for c in res['per_class']) == 3 * 48 * 64
    monkeypatch.setattr(sys, 'argv', cmd + ['--strict'])
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'im3.png' in err and 'empty file' in err, err

def _eval_cli(tmp_path, monkeypatch, capsys, bad_opts, good_opts, **split_kw):
    "`uss eval` (entry point, in this process) with `bad_opts`, which must exit 2 before any feature is cached (its stderr returned), then with `good_opts` (its JSON result returned)."
    from uss_nb.cli import main
    _split(tmp_path, **split_kw)
    monkeypatch.setenv('USS_DATA', str(tmp_path)); monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    cmd = ['uss', 'eval', '--data', 'camvid/val', '--pipeline', 'kmeans', '--backbone', 'tiny_vit', '--quiet']
    monkeypatch.setattr(sys, 'argv', cmd + bad_opts)
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert not (tmp_path/'cache').exists()
    monkeypatch.setattr(sys, 'argv', cmd + good_opts + ['--json']); main()
    return err, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

def test_uss_eval_fit_on_dsm(tmp_path, monkeypatch, capsys):
    "`uss eval --fit_on dsm --n_segments 3 --eigenvectors 5` reaches the config; a bad --fit_on fails before any feature is computed."
    err, res = _eval_cli(tmp_path, monkeypatch, capsys, ['--fit_on', 'superpixels'], ['--fit_on', 'dsm', '--n_segments', '3', '--eigenvectors', '5'])
    assert "unknown name 'superpixels'" in err and 'pixels, dsm' in err, err
    assert res['n_scored'] == 3 and (res['config']['fit_on'], res['config']['n_segments'], res['config']['k']) == ('dsm', 3, 5)

def test_uss_eval_photometric(tmp_path, monkeypatch, capsys):
    "`uss eval --photometric channels` reaches the config and caches its features apart; a bad mode fails before any feature is computed."
    err, res = _eval_cli(tmp_path, monkeypatch, capsys, ['--photometric', 'greyworld'], ['--photometric', 'channels'], bad=False)
    assert "unknown mode 'greyworld'" in err and 'none, channels, luminance' in err, err
    assert res['n_scored'] == 3 and res['config']['photometric'] == 'channels'
    assert [p.name for p in (tmp_path/'cache').iterdir()] == ['photometric-channels']

def test_uss_eval_crf_temperature(tmp_path, monkeypatch, capsys):
    "`uss eval --refine crf --crf_temperature 0.02` reaches the config; a temperature of 0 fails before any feature is computed."
    err, res = _eval_cli(tmp_path, monkeypatch, capsys, ['--refine', 'crf', '--crf_temperature', '0'], ['--refine', 'crf', '--crf_temperature', '0.02'])
    assert 'crf_temperature' in err and 'must be a number > 0, got 0' in err, err
    assert res['n_scored'] == 3 and res['config']['crf_temperature'] == 0.02

def test_uss_segment_lists_bad_files_and_strict_fails(mixed_folder, tmp_path, monkeypatch, capsys):
    "`uss segment FOLDER` (entry point, in this process): good images segmented, bad ones listed at the end; --strict stops."
    from uss_nb.cli import main
    cmd = ['uss', 'segment', str(mixed_folder), '--out', str(tmp_path/'out'), '--pipeline', 'kmeans', '--backbone', 'tiny_vit',
           '--n_clusters', '2', '--size', '64', '--quiet']
    monkeypatch.setattr(sys, 'argv', list(cmd)); main()
    out, err = capsys.readouterr()
    assert 'segmented 3 images' in out
    assert sorted(p.name for p in (tmp_path/'out').glob('*_labels.png')) == ['good0_labels.png', 'good1_labels.png', 'good2_labels.png']
    tail = err.strip().splitlines()
    assert '3 of 6 images could not be read' in tail[-4] and [f in l for f, l in zip(('cut.jpg', 'empty.jpg', 'one.png'), tail[-3:])] == [True] * 3, err
    monkeypatch.setattr(sys, 'argv', cmd + ['--strict'])
    with pytest.raises(SystemExit) as e: main()
    assert e.value.code == 2 and 'cut.jpg' in capsys.readouterr().err

def test_uss_segment_crf_temperature(mixed_folder, tmp_path, monkeypatch, capsys):
    "`uss segment --refine crf --crf_temperature 0.02` reaches segments.json's config; a temperature of 0 exits 2 before any output."
    from uss_nb.cli import main
    cmd = ['uss', 'segment', str(mixed_folder), '--out', str(tmp_path/'out'), '--pipeline', 'kmeans', '--backbone', 'tiny_vit',
           '--n_clusters', '2', '--size', '64', '--quiet', '--refine', 'crf', '--crf_temperature']
    monkeypatch.setattr(sys, 'argv', cmd + ['0'])
    with pytest.raises(SystemExit) as e: main()
    assert e.value.code == 2 and 'must be a number > 0, got 0' in capsys.readouterr().err
    assert not (tmp_path/'out').exists()
    monkeypatch.setattr(sys, 'argv', cmd + ['0.02']); main()
    assert json.loads((tmp_path/'out'/'segments.json').read_text())['config']['crf_temperature'] == 0.02

# ---------------------------------------------------------------------------------------------------------------
# Bad labels

def test_label_ids_out_of_range(tmp_path):
    Image.fromarray(np.array([[0, 1], [7, 255]] * 8, np.uint8)).save(tmp_path/'l.png')
    with pytest.raises(BadInputError, match=r'l\.png.*ids \[7\]'): read_label(tmp_path/'l.png', n_classes=2)
    assert read_label(tmp_path/'l.png', n_classes=8).tolist()[1] == [7, 255]
    conf = Confusion(2)
    with pytest.raises(BadInputError, match='target.*found \\[7\\]'): conf.update(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 7], [1, 255]]))
    with pytest.raises(BadInputError, match='pred.*found \\[5\\]'): conf.update(torch.tensor([[0, 5]]), torch.tensor([[0, 1]]))
    with pytest.raises(BadInputError, match='integer labels'): conf.update(torch.zeros(1, 2), torch.tensor([[0, 1]]))
    assert conf.n_pixels == 0     # a refused update counts nothing

def test_label_size_mismatch(tmp_path):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path/'l.png')
    with pytest.raises(BadInputError, match=r'l\.png.*30x40.*48x64'): read_label(tmp_path/'l.png', 2, size=(48, 64))
    with pytest.raises(BadInputError, match='differs from target'): Confusion(2).update(torch.zeros(3, 4, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long))
    Image.fromarray(np.full((20, 20), 300, np.uint16)).save(tmp_path/'l16.png')
    with pytest.raises(BadInputError, match=r'l16\.png.*\[300\]'): read_label(tmp_path/'l16.png', 2)
    Image.fromarray(RGB).save(tmp_path/'rgb.png')
    with pytest.raises(BadInputError, match=r'rgb\.png.*single-channel'): read_label(tmp_path/'rgb.png', 2)

def test_all_ignore_labels():
    t = torch.randint(0, 3, (2, 8, 8)); p = (t + 1) % 3
    ign = torch.full((8, 8), 255)
    a = evaluate([p[0], p[1]], [t[0], t[1]], 3)
    b = evaluate([p[0], torch.zeros(8, 8, dtype=torch.long), p[1]], [t[0], ign, t[1]], 3)   # an all-ignore image adds nothing
    assert (a.miou, a.acc, a.n_pixels) == (b.miou, b.acc, b.n_pixels) == (100., 100., 128)
    e = evaluate(torch.zeros(8, 8, dtype=torch.long), ign, 3)      # nothing to score: documented nan, not a made-up number
    assert e.n_pixels == 0 and math.isnan(e.miou) and math.isnan(e.acc)

def test_all_ignore_split_fails_in_a_pipeline(tmp_path, monkeypatch):
    ds = SplitFolder(_split(tmp_path, 2, bad=False, all_ignore=True), 'val')
    monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    with pytest.raises(BadInputError, match='no labelled pixel'):
        evaluate_pipeline(ds, EvalConfig(pipeline='kmeans', backbone='tiny_vit', fit_pixels=500), progress=False)

# ---------------------------------------------------------------------------------------------------------------
# Numerics: no NaN or inf anywhere

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('eps', [1e-3, 1e-2, 1e-1, 1.])
def test_sinkhorn_over_eps_and_dtypes(eps, dtype, device):
    g = torch.Generator().manual_seed(0)
    for n, m in ((7, 5), (96, 48)):                 # the second is big enough for the cached-kernel path
        C = torch.rand(n, m, generator=g).to(device, dtype)
        a = (torch.rand(n, generator=g) + 0.1).to(device); a /= a.sum()
        for fast in (False, 'auto'):
            r = sinkhorn(C, a, eps=eps, n_iter=2000, tol=1e-6, fast=fast)
            assert finite(r.plan, r.f, r.g, r.err) and bool((r.plan >= 0).all())
            torch.testing.assert_close(r.plan.sum(1), a, atol=1e-6, rtol=1e-4)          # rows: exact after the last update
            assert r.plan.device.type == device and r.plan.dtype == torch.float32
            col_err = float((r.plan.sum(0) - 1 / m).norm())
            assert abs(col_err - float(r.err)) < 1e-6 + 1e-2 * col_err                  # the reported error is the true one (to 1%: float32 sums)
            assert r.converged == (float(r.err) < 1e-6) and (r.converged or r.n_iter == 2000)
            if eps >= 1e-2: assert r.converged, (n, m, eps, float(r.err))                # small eps may need more iterations
        r = sinkhorn(C, eps=eps, tau_a=0.5, tau_b=0.5, n_iter=500)   # unbalanced
        assert finite(r.plan, r.f, r.g)

def test_sinkhorn_extreme_costs():
    C = torch.tensor([[0., 1e4], [1e4, 0.]])
    r = sinkhorn(C, eps=1e-3)                      # cost/eps = 1e7: exp underflows, log domain must not
    assert finite(r.plan, r.f, r.g); torch.testing.assert_close(r.plan, torch.eye(2) / 2)
    with pytest.raises(BadInputError, match='eps'): sinkhorn(C, eps=0.)
    with pytest.raises(BadInputError, match='negative mass'): sinkhorn(C, a=torch.tensor([1.5, -0.5]))
    with pytest.raises(BadInputError, match='NaN'): sinkhorn(torch.tensor([[0., math.nan], [1., 0.]]))
    with pytest.raises(BadInputError, match='-inf'): sinkhorn(torch.tensor([[0., -math.inf], [1., 0.]]))
    with pytest.raises(BadInputError, match='equal total masses'): sinkhorn(C, a=torch.tensor([.5, .6]))
    with pytest.raises(BadInputError, match='no mass'): sinkhorn(C, a=torch.zeros(2), b=torch.zeros(2))
    r = sinkhorn(torch.rand(5, 4), torch.tensor([.5, 0, 0, .5, 0]), torch.tensor([0, .5, .5, 0]), eps=1e-3)  # zero-mass points
    assert finite(r.plan, r.f, r.g) and float(r.plan[[1, 2, 4]].abs().sum() + r.plan[:, [0, 3]].abs().sum()) == 0.
    assert finite(sinkhorn(torch.rand(5, 4), torch.tensor([1., 0, 0, 0, 0]), eps=0.1, tau_a=1., tau_b=1.).f)   # unbalanced too

def test_kmeans_more_clusters_than_points():
    x = torch.randn(5, 3)
    with pytest.raises(BadInputError, match='10 clusters for only 5 points'): KMeans(10).fit(x)
    with pytest.raises(BadInputError, match='5 points for 10 clusters'): OTC(10, rounds=2).fit(x)
    with pytest.raises(BadInputError, match='k: must be >= 1'): KMeans(0)

@pytest.mark.parametrize('metric', ['l2', 'cosine'])
@pytest.mark.parametrize('batch_size', [None, 8])
def test_kmeans_duplicate_points(metric, batch_size):
    for x in (torch.ones(20, 3), torch.cat([torch.ones(10, 3), -torch.ones(10, 3)]), torch.ones(4, 3)):
        km = KMeans(4, metric=metric, batch_size=batch_size, n_init=2)
        with pytest.warns(UserWarning, match='clusters are empty'): labels, c = km.fit(x)
        assert finite(c) and math.isfinite(km.inertia) and km.inertia < 1e-4
        assert labels.min() >= 0 and labels.max() < 4 and torch.equal(c[km.predict(x)], c[labels])   # ties between equal centres
    for metric_otc in ('cosine', 'l2'):
        o = OTC(4, rounds=5, metric=metric_otc); o.fit(torch.ones(20, 3))
        assert finite(o.centres_, o.assignment_)

def _graphs():
    g = torch.Generator().manual_seed(0); n = 48
    blocks = torch.zeros(1, n, n); blocks[:, :24, :24] = 1; blocks[:, 24:, 24:] = 1
    half = torch.zeros(1, n, n); r = torch.rand(24, 24, generator=g); half[:, :24, :24] = (r + r.T) / 2
    relu = torch.randn(1, 8, 6, 8, generator=g).relu(); relu[..., :3, :] = 0
    return {'disconnected': blocks, 'half isolated': half, 'constant features': feature_affinity(torch.ones(1, 8, 6, 8)),
            'no edges': feature_affinity(torch.zeros(1, 8, 6, 8)), 'relu zeros': feature_affinity(relu),
            'mixed batch': torch.cat([torch.zeros(1, n, n), blocks])}

@pytest.mark.parametrize('solver', ['krylov', 'dense', 'lobpcg', 'scipy'])
@pytest.mark.parametrize('kind', ['generalized', 'sym'])
def test_eigensolvers_on_degenerate_graphs(solver, kind):
    for name, W in _graphs().items():
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); vals, vecs = spectral_eigs(W, 6, kind, solver)
        assert finite(vals, vecs), (name, solver)
        d = degrees(W.double()); v = vecs.double(); lam = vals.double()[:, None, :]
        if kind == 'generalized': res, gram = (torch.diag_embed(d) - W.double()) @ v - d[..., None] * v * lam, v.transpose(1, 2) @ (d[..., None] * v)
        else:
            s = d.rsqrt(); L = torch.eye(W.shape[-1]) - s[..., :, None] * W.double() * s[..., None, :]
            res, gram = L @ v - v * lam, v.transpose(1, 2) @ v
        assert float(res.abs().max()) < 1e-3, (name, solver, float(res.abs().max()))       # real eigenpairs ...
        torch.testing.assert_close(gram, torch.eye(6, dtype=gram.dtype).expand_as(gram), atol=1e-3, rtol=0)  # ... no zero vector
        assert bool((vals >= -1e-4).all()) and bool((vals <= 2 + 1e-4).all()) and bool((vals.diff(dim=-1) >= -1e-4).all())

def test_losses_on_empty_batches():
    cfg = StegoConfig(dim=8, feature_samples=4, neg_samples=2)
    f, c = torch.zeros(0, 16, 6, 6, requires_grad=True), torch.zeros(0, 8, 6, 6, requires_grad=True)
    losses = [stego_loss(f, f, c, c, cfg)[0], ClusterProbe(8, 3)(c)[0], ClusterProbe(8, 3)(c, alpha=2.)[0]]
    A = torch.zeros(0, 5, requires_grad=True)
    losses += [abc_loss(A), coverage_loss(A, 0.1, 0.5), disjointness_loss(A)]
    S = torch.rand(0, 10, 3, requires_grad=True)
    losses += [modularity_loss(torch.randn(0, 10, 4), S), modularity_loss(torch.randn(2, 0, 4), torch.rand(2, 0, 3))]
    acg = ACG(4, 3, 2)
    out = acg(torch.randn(0, 10, 4)); losses.append(modularity_loss(torch.randn(0, 10, 4), out.soft))
    for l in losses:
        assert l.ndim == 0 and l.item() == 0. and finite(l.detach())
        if l.requires_grad: l.backward()
    assert finite(c.grad, A.grad, S.grad)
    with pytest.raises(BadInputError, match='K >= 1'): abc_loss(torch.zeros(8, 0))

def test_losses_on_degenerate_batches():
    "One image (no negative partner but itself), all-zero features and codes: finite values."
    cfg = StegoConfig(dim=8, feature_samples=4, neg_samples=2)
    for f, c in ((torch.randn(1, 16, 6, 6), torch.randn(1, 8, 6, 6)), (torch.zeros(2, 16, 6, 6), torch.zeros(2, 8, 6, 6))):
        l, logs = stego_loss(f, f, c, c, cfg, torch.Generator().manual_seed(0))
        assert finite(l) and all(math.isfinite(v) for v in logs.values())
    assert finite(abc_loss(torch.zeros(10, 4)), abc_loss(torch.ones(1, 4)), modularity_loss(torch.zeros(1, 10, 4), torch.rand(1, 10, 3)))

# ---------------------------------------------------------------------------------------------------------------
# Interruption: SIGKILL mid-run, rerun, same result, no corrupt cache file

def _kill_when(proc, ready, timeout=120):
    "SIGKILL `proc` as soon as `ready()` is true; fails if it ends first."
    t0 = time.time()
    while not ready():
        if proc.poll() is not None: pytest.fail(f'child ended before it could be killed: {proc.stderr.read()}')
        if time.time() - t0 > timeout: proc.kill(); pytest.fail('child made no progress')
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert proc.returncode == -signal.SIGKILL

FEATURES_CHILD = '''
import sys, time, torch
torch.set_num_threads(1)
from uss_nb.backbones import tiny_vit
from uss_nb.features import RandomImages, extract_features
class Slow(RandomImages):
    def __getitem__(self, i): time.sleep(0.15); return super().__getitem__(i)
extract_features(tiny_vit(), Slow(12, sizes=((40, 48), (32, 56)), seed=3), cache_dir=sys.argv[1], batch_size=1, progress=False)
'''

def test_feature_extraction_killed_and_resumed(tmp_path):
    cache = tmp_path/'cache'
    ds, bb = RandomImages(12, sizes=((40, 48), (32, 56)), seed=3), tiny_vit()
    folder = cache_folder(cache, feature_config(bb))
    entries = lambda: [p for p in folder.glob('*.pt')] if folder.is_dir() else []
    proc = subprocess.Popen([sys.executable, '-c', FEATURES_CHILD, str(cache)], env=child_env(), stderr=subprocess.PIPE, text=True)
    _kill_when(proc, lambda: len(entries()) >= 4)
    done = len(entries()); assert 4 <= done < 12
    h = config_hash(feature_config(bb))
    for p in entries(): assert read_entry(p, p.stem, h, bb) is not None, p   # every entry that exists is sound
    assert load_json(folder/'manifest.json')['config_hash'] == h
    calls = []; bb.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    fs = extract_features(bb, ds, cache_dir=cache, batch_size=1, progress=False)
    assert len(entries()) == 12 and sum(calls) == 12 - done            # only the missing ones (entries are written atomically)
    ref = extract_features(tiny_vit(), ds, batch_size=1, progress=False)  # uninterrupted, in memory
    assert fs.names == ref.names
    for n in ref.names: assert torch.equal(fs[n].feats, ref[n].feats) and torch.equal(fs[n].attn, ref[n].attn), n
    leftovers = [p.name for p in folder.iterdir() if not (p.suffix == '.pt' or p.name == 'manifest.json')]
    assert all(n.startswith('.') and n.endswith('.tmp') for n in leftovers), leftovers   # at most a temp file of the killed write

STEGO_CHILD = '''
import sys, time, torch
torch.set_num_threads(1)
from uss_nb.stego import StegoConfig, train_stego
feats = torch.randn(8, 16, 6, 6, generator=torch.Generator().manual_seed(0))
cfg = StegoConfig(n_classes=3, dim=8, batch_size=4, max_steps=12, num_neighbors=2, feature_samples=4, neg_samples=2)
slow = lambda code, batch: (time.sleep(0.2), (code.sum() * 0, {}))[1]
train_stego(feats, cfg, ckpt=sys.argv[1], ckpt_every=2, extra_losses=[slow])
'''

def test_head_training_killed_and_resumed(tmp_path):
    ckpt = tmp_path/'stego.pt'
    proc = subprocess.Popen([sys.executable, '-c', STEGO_CHILD, str(ckpt)], env=child_env(), stderr=subprocess.PIPE, text=True)
    _kill_when(proc, lambda: ckpt.exists() and load(ckpt)['step'] >= 4)
    step = load(ckpt)['step']; assert 4 <= step < 12                    # the checkpoint on disk is sound
    feats = torch.randn(8, 16, 6, 6, generator=torch.Generator().manual_seed(0))
    cfg = StegoConfig(n_classes=3, dim=8, batch_size=4, max_steps=12, num_neighbors=2, feature_samples=4, neg_samples=2)
    zero = lambda code, batch: (code.sum() * 0, {})
    resumed = train_stego(feats, cfg, ckpt=ckpt, ckpt_every=2, extra_losses=[zero])
    ref = train_stego(feats, cfg, extra_losses=[zero])
    assert resumed.step == ref.step == 12 and resumed.history == ref.history
    for (k, a), b in zip(resumed.head.state_dict().items(), ref.head.state_dict().values()): assert torch.equal(a, b), k
    assert torch.equal(resumed.probe.clusters, ref.probe.clusters)
    assert load(ckpt)['step'] == 12

def test_acg_training_resumes_to_the_same_model(tmp_path):
    "ACG checkpoints per epoch: stopping after 2 of 4 epochs and resuming equals 4 epochs in one go."
    feats = torch.randn(6, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    kw = dict(n_prototypes=3, n_steps=2, batch=3, micro_batch=3, ckpt_every=1)
    train_acg(feats, ACGConfig(epochs=2, **kw), ckpt=tmp_path/'acg.pt')
    m1, h1 = train_acg(feats, ACGConfig(epochs=4, **kw), ckpt=tmp_path/'acg.pt')
    m2, h2 = train_acg(feats, ACGConfig(epochs=4, **kw))
    assert h1 == h2 and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))

# ---------------------------------------------------------------------------------------------------------------
# Untrusted files

class _Evil:
    "Unpickling this runs code: it creates the marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (Path.touch, (Path(self.marker),))

def test_checkpoint_loaders_use_weights_only():
    "Every torch.load in the package passes weights_only=True; no other unpickler is used."
    for f in (ROOT/'uss_nb').glob('*.py'):
        src = f.read_text()
        for m in re.finditer(r'torch\.load\(([^\n]*)', src): assert 'weights_only=True' in m.group(1), (f.name, m.group(0))
        assert not re.search(r'pickle\.loads?\(|allow_pickle\s*=\s*True|torch\.jit\.load|dill\.', src), f.name

@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path/'pwned'
    evil = tmp_path/'evil.pt'; torch.save({'head': _Evil(marker), 'step': 3}, evil)
    raw = tmp_path/'raw.pkl'; raw.write_bytes(pickle.dumps({'model': _Evil(marker)}))
    feats = torch.randn(4, 16, 4, 4)
    for path in (evil, raw):
        attempts = [lambda: load(path), lambda: train_stego(feats, StegoConfig(n_classes=2, dim=4, max_steps=1), ckpt=path),
                    lambda: train_acg(feats, ACGConfig(epochs=1, n_steps=1), ckpt=path), lambda: ABC.load(path),
                    lambda: get_backbone('tiny_vit', checkpoint=path)]
        for f in attempts:
            with pytest.raises(BadInputError, match=re.escape(path.name)): f()
        assert read_entry(path, 'x', 'h', tiny_vit()) is None     # a cache entry like this is recomputed, not run
    assert not marker.exists()

def test_cache_manifest_and_entries_with_a_wrong_hash_are_recomputed(tmp_path):
    ds, bb = RandomImages(4), tiny_vit()
    calls = []; bb.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    fs = extract_features(bb, ds, cache_dir=tmp_path, progress=False)
    ref = {n: fs[n].feats.clone() for n in fs.names}
    folder, h = fs.folder, config_hash(fs.config)
    man = load_json(folder/'manifest.json'); man['config_hash'] = 'deadbeefdeadbeef'; save_json(man, folder/'manifest.json')
    save({**load(entry_path(folder, 'img01')), 'hash': 'deadbeefdeadbeef'}, entry_path(folder, 'img01'))   # another config's entry
    b = bytearray(entry_path(folder, 'img02').read_bytes())                                                  # one flipped bit in the data
    b[b.find(ref['img02'].numpy().tobytes()[:32]) + 5] ^= 1; entry_path(folder, 'img02').write_bytes(bytes(b))
    entry_path(folder, 'img03').write_bytes(entry_path(folder, 'img03').read_bytes()[:50])                 # torn write
    calls.clear()
    fs2 = extract_features(bb, ds, cache_dir=tmp_path, progress=False)
    assert sum(calls) == 3                                            # the three bad entries, nothing else
    assert load_json(folder/'manifest.json')['config_hash'] == h       # manifest rewritten
    for n in ds.names: assert torch.equal(fs2[n].feats, ref[n]), n
    (folder/'manifest.json').write_text('{ not json')
    calls.clear(); extract_features(bb, ds, cache_dir=tmp_path, progress=False)
    assert sum(calls) == 0 and load_json(folder/'manifest.json')['config_hash'] == h

# ---------------------------------------------------------------------------------------------------------------
# Properties (hypothesis)

@st.composite
def _seg(draw):
    "A target map (ids 0..C-1 and some 255) and a prediction with K >= C cluster ids."
    C = draw(st.integers(1, 5)); K = draw(st.integers(1, 7)); n = draw(st.integers(1, 60))
    t = draw(st.lists(st.one_of(st.integers(0, C - 1), st.just(255)), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, K - 1), min_size=n, max_size=n))
    perm = draw(st.permutations(range(K)))
    return torch.tensor(t), torch.tensor(p), C, K, torch.tensor(perm)

def _same(a, b): return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9

@SETTINGS
@given(_seg())
def test_permuting_cluster_ids_never_changes_the_scores(case):
    t, p, C, K, perm = case
    for matching in ('hungarian', 'many_to_one'):
        a, b = evaluate(p, t, C, matching, n_clusters=K), evaluate(perm[p], t, C, matching, n_clusters=K)
        assert _same(a.miou, b.miou) and _same(a.acc, b.acc), (matching, a.miou, b.miou)
        assert 0 <= a.acc <= 100 or math.isnan(a.acc)

@SETTINGS
@given(_seg())
def test_a_perfect_prediction_scores_100(case):
    t, _, C, K, perm = case
    if K < C: perm = torch.cat([perm, torch.arange(K, C)]); K = C       # a perfect prediction needs a cluster per class
    p = torch.where(t == 255, perm[0], perm[t.clamp(max=C - 1)])   # any relabelling of the truth; ignored pixels anything
    for matching in ('hungarian', 'many_to_one'):
        s = evaluate(p, t, C, matching, n_clusters=K)
        if s.n_pixels: assert s.miou == 100. and s.acc == 100., (matching, s.miou, s.acc)
        else: assert math.isnan(s.miou)

@SETTINGS
@given(st.integers(1, 9), st.integers(1, 9), st.floats(-2, 0), st.integers(0, 2**31 - 1), st.booleans(), st.booleans())
def test_sinkhorn_marginals(n, m, log_eps, seed, bf16, zeros):
    g = torch.Generator().manual_seed(seed)
    C = torch.rand(n, m, generator=g)
    a = torch.rand(n, generator=g) + 0.05; b = torch.rand(m, generator=g) + 0.05
    if zeros: a[torch.rand(n, generator=g) < 0.3] = 0; b[torch.rand(m, generator=g) < 0.3] = 0; a[0] += 0.1; b[-1] += 0.1
    a, b = a / a.sum(), b / b.sum()
    r = sinkhorn(C.bfloat16() if bf16 else C, a, b, eps=10 ** log_eps, n_iter=5000, tol=1e-7)
    assert finite(r.plan, r.f, r.g) and bool((r.plan >= 0).all())
    assert float(r.plan[a == 0].abs().sum() + r.plan[:, b == 0].abs().sum()) == 0.
    torch.testing.assert_close(r.plan.sum(1), a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(r.plan.sum(0), b, atol=1e-5, rtol=1e-4)

# ---------------------------------------------------------------------------------------------------------------
# Defects found by an adversarial pass: each test reproduces one and checks the fix

import errno, gc, tempfile

@pytest.fixture
def no_image_reads(monkeypatch):
    "Fail the test if any image file is decoded."
    import uss_nb.data
    def refuse(path, *a, **kw): raise AssertionError(f'an image was read: {path}')
    monkeypatch.setattr(uss_nb.data, '_read_image', refuse)

def _counting(bb):
    calls = []; bb.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0])); return calls

def test_empty_cache_entry_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    "A 0-byte entry (as a crash before an fsync leaves) is reported, recomputed and rewritten; entries are flushed to the disk."
    from uss_nb.features import CacheWarning
    ds, bb = RandomImages(3), tiny_vit(); calls = _counting(bb)
    synced, real = [], os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: (synced.append(fd), real(fd))[1])
    fs = extract_features(bb, ds, cache_dir=tmp_path, progress=False)
    assert len(synced) >= 2 * 3 + 2                    # each entry and its folder, the manifest and its folder
    p = entry_path(fs.folder, 'img01'); ref = fs['img01'].feats.clone()
    p.write_bytes(b'')
    with pytest.raises(BadInputError, match='empty file'): load(p)
    calls.clear()
    with pytest.warns(CacheWarning, match=re.escape(str(p))):
        fs2 = extract_features(bb, ds, cache_dir=tmp_path, progress=False)
    assert sum(calls) == 1 and torch.equal(fs2['img01'].feats, ref) and p.stat().st_size > 0

def _png_with_broken_stream(path):
    b = bytearray(_png_bytes(Image.fromarray(RGB))); i = b.find(b'IDAT') + 20
    b[i:i + 40] = bytes(x ^ 0xff for x in b[i:i + 40]); path.write_bytes(bytes(b)); return path

def test_png_with_a_corrupt_data_stream_is_refused(tmp_path):
    p = _png_with_broken_stream(tmp_path/'noise.png')
    with pytest.raises(BadInputError, match=re.escape(str(p)) + '.*corrupt'): read_image(p)
    with pytest.raises(BadInputError, match='noise.png'): extract_features(tiny_vit(), ImageFolder(tmp_path), strict=True, progress=False)

def _exif_jpeg(path, o):
    ex = Image.Exif(); ex[0x0112] = o
    Image.fromarray(RGB).save(path, exif=ex.tobytes(), quality=95); return path   # stored 48 wide, 40 high

def test_uss_segment_applies_exif_orientation(tmp_path):
    "A portrait phone photo (stored sideways, orientation 6) is segmented upright; an invalid orientation is ignored."
    from uss_nb.pipelines import image_dataset, segment_paths
    p = _exif_jpeg(tmp_path/'portrait.jpg', 6)
    assert image_dataset([p])[0][0].shape == (3, 48, 40)
    rows = segment_paths([p], tmp_path/'out', EvalConfig(pipeline='kmeans', backbone='tiny_vit'), n_clusters=2, size=32, progress=False)
    assert rows[0]['size'][0] > rows[0]['size'][1]                        # taller than wide
    for o in (9, 65535):                                                   # not orientations: read as stored, not stretched
        q = _exif_jpeg(tmp_path/f'o{o}.jpg', o)
        torch.testing.assert_close(read_image(q), read_image(q, exif=False))

def test_short_side_resize_keeps_a_pixel_budget(tmp_path):
    "A 2000x16 strip at --size 320 is not blown up to 40000x320."
    from uss_nb.pipelines import image_dataset
    Image.fromarray(RNG.integers(0, 256, (16, 2000, 3), dtype=np.uint8)).save(tmp_path/'strip.png')
    ds = image_dataset([tmp_path/'strip.png'], size=320)
    (h, w), x = ds.sizes()[0], ds[0][0]
    assert tuple(x.shape[-2:]) == (h, w) and h * w <= 4 * 320 * 320 and w / h > 100

def test_long_names_do_not_abort_runs(tmp_path):
    "Percent-escaping (x3 for non-ASCII) and the temporary suffix must not overflow the file system's name limit."
    NAME_MAX = os.pathconf(tmp_path, 'PC_NAME_MAX')
    save({'x': 1}, tmp_path/('b' * 250 + '.pt'))                                 # the temporary name is longer still
    names = ['é' * 100 + str(i) for i in range(2)]
    class Named(RandomImages):
        def __init__(self): super().__init__(2); self.names = names
    fs = extract_features(tiny_vit(), Named(), cache_dir=tmp_path/'cache', progress=False)
    assert fs.names == names and all(len(p.name.encode()) <= NAME_MAX for p in fs.folder.iterdir())
    assert fs[names[0]].feats.shape[0] == 32 and not torch.equal(fs[names[0]].feats, fs[names[1]].feats)
    from uss_nb.pipelines import segment_paths
    p = tmp_path/('c' * 240 + '.png'); Image.fromarray(RGB).save(p)
    rows = segment_paths([p], tmp_path/'out', EvalConfig(pipeline='kmeans', backbone='tiny_vit'), n_clusters=2, size=32, progress=False)
    assert (tmp_path/'out'/rows[0]['labels']).is_file() and (tmp_path/'out'/rows[0]['overlay']).is_file()

@pytest.mark.parametrize('content', [[1, 2], 7, torch.zeros(3), {'cfg': [1]}])
def test_checkpoint_that_is_not_a_dict_is_refused(tmp_path, content):
    p = save(content, tmp_path/'odd.pt')
    feats = torch.randn(4, 16, 4, 4)
    for f in (lambda: train_acg(feats, ACGConfig(epochs=1, n_steps=1), ckpt=p), lambda: ABC.load(p),
              lambda: get_backbone('tiny_vit', checkpoint=p)):
        with pytest.raises(BadInputError, match=re.escape(str(p))): f()
    from uss_nb.core import load_dict
    from uss_nb.features import CacheWarning
    with pytest.raises(BadInputError, match=re.escape(str(p)) + ': not a checkpoint'): load_dict(p, ('model',))
    if not isinstance(content, dict):
        with pytest.warns(CacheWarning, match='odd.pt'): assert read_entry(p, 'x', 'h', tiny_vit()) is None

def test_replaced_image_with_same_size_and_mtime_is_recomputed(tmp_path):
    "The cache is keyed by the file's content: a different image of the same byte size and modification time is not served stale features."
    d = tmp_path/'imgs'; d.mkdir(); p = d/'a.bmp'
    Image.fromarray(RGB).save(p); st = p.stat()
    bb = tiny_vit(); calls = _counting(bb)
    old = extract_features(bb, ImageFolder(d), cache_dir=tmp_path/'cache', progress=False)['a'].feats.clone()
    Image.fromarray(255 - RGB).save(p); os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    calls.clear()
    new = extract_features(bb, ImageFolder(d), cache_dir=tmp_path/'cache', progress=False)['a'].feats
    assert sum(calls) == 1 and not torch.equal(new, old)
    assert torch.equal(new, extract_features(tiny_vit(), ImageFolder(d), progress=False)['a'].feats)

BAD_OPTIONS = [   # (subcommand, options, words the error must hold: the option, what is allowed, the value)
    ('eval', ['--n_clusters', '0'], 'n_clusters: must be an integer from 1 to 65535, got 0'),
    ('eval', ['--n_clusters', '-3'], 'n_clusters: must be an integer from 1 to 65535, got -3'),
    ('eval', ['--n_init', '0'], 'n_init: must be an integer from 1 to 1000, got 0'),
    ('eval', ['--scales', 'inf'], 'scales: must be one or more positive scale factors (finite numbers), got (inf,)'),
    ('eval', ['--seed', str(2**64)], f'seed: must be an integer from 0 to {2**32 - 1}, got {2**64}'),
    ('eval', ['--n_segments', '0'], 'n_segments: must be an integer from 1 to 254, got 0'),
    ('eval', ['--n_segments', '300'], 'n_segments: must be an integer from 1 to 254, got 300'),
    ('eval', ['--eigenvectors', '1'], 'eigenvectors: must be an integer from 2 to 256, got 1'),
    ('eval', ['--eigenvectors', '0'], 'eigenvectors: must be an integer from 2 to 256, got 0'),
    ('eval', ['--eigenvectors', '5000'], 'eigenvectors: must be an integer from 2 to 256, got 5000'),
    ('eval', ['--color_lambda', 'nan'], 'color_lambda: must be a finite number >= 0, got nan'),
    ('eval', ['--color_lambda', '-1'], 'color_lambda: must be a finite number >= 0, got -1.0'),
    ('eval', ['--epochs', '0'], 'epochs: must be an integer >= 1, got 0'),
    ('segment', ['--size', '-5'], 'size: must be an integer from 16 to 8192, got -5'),
    ('segment', ['--n_clusters', '0'], 'n_clusters: must be an integer from 1 to 65535, got 0'),
    ('segment', ['--seed', '-1'], 'seed: must be an integer from 0 to 4294967295, got -1'),
    ('demo', ['--size', '-5'], 'size: must be an integer from 16 to 8192, got -5'),
    ('demo', ['--limit', '-1'], 'limit: must be an integer >= 1, got -1'),
    ('demo', ['--limit', '0'], 'limit: must be an integer >= 1, got 0'),
]

@pytest.mark.parametrize('cmd,opts,words', BAD_OPTIONS, ids=[f'{c}{"".join(o)}' for c, o, _ in BAD_OPTIONS])
def test_option_values_are_checked_before_any_image_is_read(cmd, opts, words, tmp_path, monkeypatch, capsys, no_image_reads):
    from uss_nb.cli import main
    _split(tmp_path, bad=False)
    monkeypatch.setenv('USS_DATA', str(tmp_path)); monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    base = {'eval': ['--data', 'camvid/val', '--pipeline', 'kmeans', '--backbone', 'tiny_vit'],
            'segment': [str(tmp_path/'camvid'/'val'/'images'), '--out', str(tmp_path/'out'), '--backbone', 'tiny_vit'],
            'demo': ['--out', str(tmp_path/'out'), '--backbone', 'tiny_vit']}[cmd]
    monkeypatch.setattr(sys, 'argv', ['uss', cmd, *base, '--quiet', *opts])
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err, err
    assert not (tmp_path/'cache').exists() and not (tmp_path/'out').exists()

def test_more_than_255_clusters_write_16_bit_labels(tmp_path):
    from uss_nb.pipelines import segment_paths
    Image.fromarray(RNG.integers(0, 256, (160, 192, 3), dtype=np.uint8)).save(tmp_path/'a.png')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # some of 300 clusters may be empty
        rows = segment_paths([tmp_path/'a.png'], tmp_path/'out', EvalConfig(pipeline='kmeans', backbone='tiny_vit', n_init=1), n_clusters=300, size=160, progress=False)
    with Image.open(tmp_path/'out'/'a_labels.png') as im: mode, lab = im.mode, np.asarray(im)
    assert mode.startswith('I') and lab.max() > 255 and lab.max() < 300 and sorted(np.unique(lab).tolist()) == rows[0]['clusters']

def test_disk_errors_name_the_path_and_the_cause(tmp_path, monkeypatch, capsys):
    from uss_nb.cli import main
    def fail(code): 
        def f(*a, **kw): raise OSError(code, os.strerror(code))
        return f
    monkeypatch.setattr(os, 'fsync', fail(errno.ENOSPC))
    with pytest.raises(BadInputError, match=re.escape(str(tmp_path/'c')) + '.*no space left on the device'):
        extract_features(tiny_vit(), RandomImages(2), cache_dir=tmp_path/'c', progress=False)
    assert not [p for p in (tmp_path/'c').rglob('*.tmp')]                       # no temporary file left behind
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, 'mkstemp', fail(errno.EROFS))
    with pytest.raises(BadInputError, match='x.pt: cannot write: read-only file system'): save({}, tmp_path/'x.pt')
    monkeypatch.undo()
    _split(tmp_path, bad=False)
    monkeypatch.setenv('USS_DATA', str(tmp_path)); monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr(os, 'fsync', fail(errno.ENOSPC))
    monkeypatch.setattr(sys, 'argv', ['uss', 'eval', '--data', 'camvid/val', '--pipeline', 'kmeans', '--backbone', 'tiny_vit', '--quiet'])
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and str(tmp_path/'cache') in err and 'no space left' in err and 'Traceback' not in err, err

def test_class_list_must_be_utf8_and_unique(tmp_path):
    d = _split(tmp_path, bad=False)
    (d/'classes.txt').write_bytes('ciel\nsol\n'.encode('utf-16'))
    with pytest.raises(BadInputError, match=r'classes\.txt.*not UTF-8'): SplitFolder(d, 'val')
    (d/'classes.txt').write_bytes('forêt\nsol\n'.encode('latin-1'))
    with pytest.raises(BadInputError, match=r'classes\.txt.*not UTF-8.*0xea'): SplitFolder(d, 'val')
    (d/'classes.txt').write_text('sky\nsky\n')
    with pytest.raises(BadInputError, match=r"classes\.txt.*more than once: \['sky'\]"): SplitFolder(d, 'val')
    (d/'classes.txt').write_text('ciel\nforêt\n', encoding='utf-8-sig')
    assert SplitFolder(d, 'val').classes == ['ciel', 'forêt']

def test_images_too_small_for_dsm_are_skipped_and_listed(tmp_path, monkeypatch):
    "With 16-pixel patches a 20x20 image gives one feature cell: DSM cannot segment it; it is listed, the rest scored."
    import uss_nb.pipelines as P
    d = _split(tmp_path, bad=False)
    Image.fromarray(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(d/'val'/'images'/'tiny.png')
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(d/'val'/'labels'/'tiny.png')
    monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr(P, 'load_backbone', lambda name: tiny_vit(patch_size=16))
    for pipeline in ('dsm+kmeans', 'kmeans'):
        cfg = EvalConfig(pipeline=pipeline, backbone='tiny_vit', n_clusters=2, n_segments=2, k=3, fit_on='dsm' if pipeline == 'kmeans' else 'pixels')
        r = evaluate_pipeline(SplitFolder(d, 'val'), cfg, progress=False)
        if pipeline == 'kmeans': assert r['n_scored'] == 4 and not r['skipped']        # k-means labels it; it only adds no segment
        else: assert r['n_scored'] == 3 and list(r['skipped']) == ['tiny'] and 'tiny.png' in r['skipped']['tiny'] and 'too small' in r['skipped']['tiny']

def test_numerics_refuse_inputs_that_would_give_nan():
    from uss_nb.spectral import spectral_segments, SpectralConfig
    C = torch.rand(3, 4)
    cases = [(lambda: sinkhorn(torch.cat([C[:2], torch.full((1, 4), math.inf)])), '+inf everywhere'),
             (lambda: sinkhorn(torch.full((3, 4), math.inf)), '+inf everywhere'),
             (lambda: sinkhorn(C, a=torch.tensor([.5, math.nan, .5])), 'NaN'),
             (lambda: sinkhorn(C, tau_a=math.nan), 'tau'),
             (lambda: sinkhorn(C, eps=math.inf), 'eps'),
             (lambda: sinkhorn(torch.zeros(0, 4)), 'empty'),
             (lambda: sinkhorn(torch.zeros(3, 0)), 'empty'),
             (lambda: KMeans(2).fit(torch.randn(20, 3) * 1e20), 'overflow'),
             (lambda: KMeans(2, metric='cosine').fit(torch.randn(20, 3) * 1e20), 'overflow'),
             (lambda: spectral_eigs(torch.full((1, 6, 6), math.nan), 3), 'NaN'),
             (lambda: spectral_segments(torch.full((1, 8, 3, 3), math.nan), cfg=SpectralConfig(k=3, n_segments=2)), 'NaN'),
             (lambda: spectral_segments(torch.randn(1, 8, 1, 1), cfg=SpectralConfig(k=3, n_segments=2)), '1 nodes')]
    for f, words in cases:
        with pytest.raises(BadInputError, match=re.escape(words)): f()
    r = sinkhorn(C, tau_a=math.inf, eps=0.1)                                     # inf: a hard constraint, as documented
    assert finite(r.plan, r.f, r.g)

def test_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        paths = [save({'x': 1}, tmp_path/'a.pt'), save_json({}, tmp_path/'b.json')]
        fs = extract_features(tiny_vit(), RandomImages(1), cache_dir=tmp_path/'cache', progress=False)
        paths += [entry_path(fs.folder, 'img00'), fs.folder/'manifest.json']
        for p in paths: assert p.stat().st_mode & 0o777 == 0o644, (p, oct(p.stat().st_mode))
    finally: os.umask(old)

@pytest.mark.parametrize('ext', ['gif', 'tif'])
def test_multi_frame_files_are_closed(tmp_path, ext):
    frames = [Image.fromarray(np.roll(RGB, i, 0)) for i in range(3)]
    p = tmp_path/f'anim.{ext}'; frames[0].save(p, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        x = read_image(p); gc.collect()
    assert x.shape == (3, 40, 48)
    assert not [m for m in w if issubclass(m.category, ResourceWarning)], [str(m.message) for m in w]

def test_broken_symlinks_in_a_folder_are_listed(tmp_path):
    Image.fromarray(RGB).save(tmp_path/'good.png'); (tmp_path/'gone.png').symlink_to(tmp_path/'deleted.png')
    ds = ImageFolder(tmp_path)
    assert ds.names == ['gone', 'good']
    with pytest.warns(InputWarning, match='gone.png: broken symbolic link'): fs = extract_features(tiny_vit(), ds, progress=False)
    assert fs.names == ['good'] and 'broken symbolic link' in fs.skipped['gone']

@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_unsafe_pickle_refusal_does_not_advise_switching_the_check_off(tmp_path):
    p = tmp_path/'evil.pt'; torch.save({'head': _Evil(tmp_path/'pwned')}, p)
    with pytest.raises(BadInputError) as e: load(p)
    msg = str(e.value)
    assert 'evil.pt: refused' in msg and 'weights_only' not in msg and 'two options' not in msg, msg
    assert not (tmp_path/'pwned').exists()

def test_empty_folder_message_fits_the_command_line(tmp_path, monkeypatch, capsys):
    from uss_nb.cli import main
    (tmp_path/'photos'/'trip').mkdir(parents=True); Image.fromarray(RGB).save(tmp_path/'photos'/'trip'/'a.png')
    monkeypatch.setattr(sys, 'argv', ['uss', 'segment', str(tmp_path/'photos'), '--out', str(tmp_path/'out'), '--quiet'])
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'no images' in err and 'sub-folders are not searched' in err and 'recursive' not in err, err

def test_uss_eval_refuses_an_unlabelled_folder_before_extraction(tmp_path, monkeypatch, capsys, no_image_reads):
    from uss_nb.cli import main
    (tmp_path/'photos').mkdir(); Image.fromarray(RGB).save(tmp_path/'photos'/'a.png')
    monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr(sys, 'argv', ['uss', 'eval', '--data', str(tmp_path/'photos'), '--pipeline', 'kmeans', '--backbone', 'tiny_vit', '--quiet'])
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'has no labels' in err and str(tmp_path/'photos') in err, err
    assert not (tmp_path/'cache').exists()

def test_a_full_disk_is_reported_for_tensors_too(tmp_path, monkeypatch):
    "torch.save on a full device fails with an opaque RuntimeError; `save` still names the file and the cause (here /dev/full)."
    if not os.path.exists('/dev/full'): pytest.skip('no /dev/full')
    real = tempfile.mkstemp
    def full(dir=None, prefix=None, suffix=None):
        fd, name = real(dir=dir, prefix=prefix, suffix=suffix); os.close(fd)
        return os.open('/dev/full', os.O_WRONLY), name              # the temporary file's writes go to a full device
    monkeypatch.setattr(tempfile, 'mkstemp', full); monkeypatch.setattr(os, 'fchmod', lambda fd, mode: None)
    with pytest.raises(BadInputError, match=re.escape(str(tmp_path/'feats.pt')) + ': cannot write: no space left on the device'):
        save({'feats': torch.zeros(100_000)}, tmp_path/'feats.pt')
    assert not list(tmp_path.iterdir())

@pytest.mark.parametrize('opts, name', [(['--steps', '0'], 'steps'), (['--steps', '-4'], 'steps'), (['--pipeline', 'acg+kmeans', '--epochs', '0'], 'epochs'),
                                        (['--n_clusters', '0'], 'n_clusters')])
def test_uss_train_refuses_no_training_before_any_work(tmp_path, monkeypatch, capsys, opts, name):
    "`uss train` with nothing to train exits 2 naming the option, reads no image and writes no checkpoint (it used to print 'trained')."
    from uss_nb.cli import main
    monkeypatch.setenv('USS_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr(sys, 'argv', ['uss', 'train', str(tmp_path/'h.pt'), '--data', 'camvid/train', '--backbone', 'tiny_vit', '--quiet'] + opts)
    with pytest.raises(SystemExit) as e: main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and f'{name}:' in err and 'trained' not in err, err
    assert not (tmp_path/'h.pt').exists() and not (tmp_path/'cache').exists()
