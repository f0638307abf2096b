"The installed command-line entry points, run as a user runs them (console scripts of the project's environment)."
import json, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

def run(*args, **kw):
    return subprocess.run([str(BIN/args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=600, **kw)

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
