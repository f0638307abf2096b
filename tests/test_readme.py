"README.md is generated from nbs/index.ipynb and must not drift from it."
import json, subprocess, sys
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'])
    assert r.returncode == 0, 'README.md is out of date: run `python tools/readme.py`'

def test_readme_gives_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text

# ---- every `uss` command of the README runs (the cheap ones) or at least parses (those that train for minutes)

def readme_commands(text=None) -> list:
    "The `uss` and `uss-bench` commands in README.md's shell blocks, continuation lines joined, `&&` chains split, comments dropped."
    import re, shlex
    text = text or (ROOT/'README.md').read_text()
    cmds = []
    for block in re.findall(r'```sh\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            for part in line.split('&&'):
                words = shlex.split(part, comments=True)
                if words and words[0] in ('uss', 'uss-bench'): cmds.append(words)
    return cmds

def test_readme_commands_are_found():
    cmds = readme_commands()
    assert {c[1] for c in cmds if c[0] == 'uss'} >= {'segment', 'eval', 'train', 'fit', '--version'}, cmds
    assert readme_commands('```sh\nuss eval --data a \\\n  --out b   # c\nuss train x.pt && uss eval --ckpt x.pt\n```') == [
        ['uss', 'eval', '--data', 'a', '--out', 'b'], ['uss', 'train', 'x.pt'], ['uss', 'eval', '--ckpt', 'x.pt']]

def _parses(words):
    "Parse a README command as the command line would, without running it; a `SystemExit` (argparse's error) fails."
    from uss_nb.cli import command_parser, bench_args, SUBCOMMANDS
    if words[0] == 'uss-bench': return bench_args(words[1], words[2:])
    if words[1].startswith('-'): return words[1] in ('--version', '-V', '--help', '-h')
    assert words[1] in SUBCOMMANDS, words
    return command_parser(words[1]).parse_args(words[2:])

def _slow(words):
    "Commands that train a head (minutes: `uss train`, `--train_data`) or need the checkpoint one trains: parsed, not run."
    return words[:2] == ['uss', 'train'] or '--ckpt' in words or '--train_data' in words

def _cheap(words):
    "The command on a small share of its data: `--limit 2` for a named split (`uss eval`, `uss fit`), one repeat on two images for a benchmark."
    from uss_nb.cli import bench_options, get_bench
    if words[:2] in (['uss', 'eval'], ['uss', 'fit']) and '--data' in words and not Path(words[words.index('--data') + 1]).exists(): return words + ['--limit', '2']
    if words[0] == 'uss-bench':
        opts = bench_options(get_bench(words[1]))
        return words + [a for k, v in (('repeats', '1'), ('n_images', '2')) if k in opts for a in (f'--{k}', v)]
    return words

@pytest.fixture
def readme_folder(tmp_path):
    "A working folder with what the README's commands name: `photos/` (two photos) and `mine/` (three labelled CamVid photos)."
    import shutil, skimage.data
    from uss_nb.data import data_root
    (tmp_path/'photos').mkdir()
    for f in ('chelsea.png', 'coffee.png'): shutil.copy(Path(skimage.data.data_dir)/f, tmp_path/'photos')
    cv = data_root()/'camvid'
    if not (cv/'val'/'images').is_dir(): pytest.skip(f'CamVid is not under {data_root()} ($USS_DATA)')
    for sub in ('images', 'labels'): (tmp_path/'mine'/sub).mkdir(parents=True)
    for p in sorted((cv/'val'/'images').iterdir())[:3]:
        shutil.copy(p, tmp_path/'mine'/'images'); shutil.copy(cv/'val'/'labels'/f'{p.stem}.png', tmp_path/'mine'/'labels')
    shutil.copy(cv/'classes.txt', tmp_path/'mine')
    return tmp_path

def test_readme_commands_run(readme_folder):
    "Every README command parses; every one but training runs, on a small share of its data, and succeeds."
    import os
    env = {**os.environ, 'USS_CACHE': str(readme_folder/'cache')}
    ran = []
    for words in readme_commands():
        assert _parses(words) is not None, words
        if _slow(words): continue
        cmd = _cheap(words)
        r = subprocess.run([str(Path(sys.executable).parent/cmd[0]), *cmd[1:]], cwd=readme_folder, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f'{" ".join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}'
        ran.append(cmd[:2])
    assert ['uss', 'segment'] in ran and ['uss', 'eval'] in ran and ['uss', 'fit'] in ran and (readme_folder/'results'/'metrics.json').exists()
    assert (readme_folder/'results'/'config.json').exists() and (readme_folder/'street.pt').exists() and (readme_folder/'street.json').exists()
    assert json.loads((readme_folder/'segments'/'segments.json').read_text())['model'] == 'street.pt'   # the last segment command applied the model
    assert len(list((readme_folder/'segments').glob('*_labels.png'))) == 2
