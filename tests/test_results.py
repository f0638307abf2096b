"The committed results under nbs/results/ parse, and the README's figures come from them."
import json, re
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'nbs'/'results'

# README figures typed by hand with no results file behind them (the ten-seed test-split headline of `17_experiments`,
# whose runs are not committed). They are left out of the check below until the headline is rendered from a file.
UNSOURCED = set()                     # README figures without a results file behind them: none

def result_files() -> list:
    "Every file under nbs/results/ but hidden ones (the lock files of `append_result`)."
    return sorted(p for p in RESULTS.rglob('*') if p.is_file() and not any(s.startswith('.') for s in p.relative_to(RESULTS).parts))

def read_lines(path) -> list:
    "The rows of a JSON-lines file: every line one JSON object."
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict), f'{path.name} line {i}: a JSON {type(row).__name__}, not an object'
        rows.append(row)
    return rows

def test_results_parse():
    files = result_files()
    assert files, f'no results under {RESULTS}'
    for p in files:
        assert p.suffix in ('.jsonl', '.json'), f'{p.relative_to(ROOT)}: results are .jsonl (one JSON object a line) or .json'
        if p.suffix == '.jsonl': assert read_lines(p), f'{p.relative_to(ROOT)} is empty'
        else: json.loads(p.read_text())

def _ms(v) -> str: return f'{np.mean(v):.1f} ± {np.std(v):.1f}'

def rendered_figures() -> set:
    "Every 'mean ± std' (population std, one decimal, as `summarize` and the notebooks' render cells print them) of mIoU and accuracy over the seeds of each group of runs in the JSON-lines results."
    out = set()
    for p in result_files():
        if p.suffix != '.jsonl': continue
        groups = {}
        for r in read_lines(p):
            key = tuple(str(r.get(k)) for k in ('label', 'pipeline', 'method', 'data', 'train_data', 'step', 'omh_weight'))
            groups.setdefault(key, []).append(r)
        for rs in groups.values():
            for m in ('miou', 'acc', 'miou_kmeans', 'miou_probe', 'acc_kmeans', 'acc_probe'):
                v = [r[m] for r in rs if isinstance(r.get(m), (int, float))]
                if v: out.add(_ms(v))
        out |= _headline_figures(read_lines(p))
    return out

def _headline_figures(rows, baseline='kmeans') -> set:
    "What `uss_nb.experiments.headline` prints for run_grid lines: each label's mIoU and the baseline's over the seeds both have, per split."
    out, runs = set(), {}
    for r in rows:
        if {'label', 'data', 'seed', 'miou'} <= set(r): runs.setdefault((r['data'], r['label']), {})[r['seed']] = r['miou']
    for (split, label), a in runs.items():
        b = runs.get((split, baseline), {})
        seeds = sorted(set(a) & set(b))
        if seeds: out |= {_ms([a[s] for s in seeds]), _ms([b[s] for s in seeds])}
    return out

def readme_figures(text=None) -> set:
    "The 'NN.N ± N.N' figures of README.md's prose (code blocks left out)."
    text = text or (ROOT/'README.md').read_text()
    return set(re.findall(r'\d+\.\d ± \d+\.\d', re.sub(r'```.*?```', '', text, flags=re.S)))

def test_readme_figures_parsed():
    assert readme_figures('a 34.3 ± 3.0 b (1.2 ± 0.4)\n```\n9.9 ± 9.9\n```') == {'34.3 ± 3.0', '1.2 ± 0.4'}
    assert _ms([1.0, 2.0, 3.0]) == '2.0 ± 0.8'
    rows = [dict(label='p', data='a', seed=s, miou=40.0 + s) for s in range(3)] + [dict(label='kmeans', data='a', seed=s, miou=30.0 + s) for s in range(5)]
    assert _headline_figures(rows) >= {'41.0 ± 0.8', '31.0 ± 0.8', '32.0 ± 1.4'}     # the baseline on the seeds both have, and on all of its own

def test_readme_figures_come_from_results():
    rendered = rendered_figures()
    assert rendered, 'no mean ± std renders from nbs/results/'
    missing = readme_figures() - rendered - UNSOURCED
    assert not missing, f'README figures that no file under nbs/results/ renders: {sorted(missing)}'

def test_result_keys_unchanged():
    "Runners resume by key: the key built today from a committed row's settings (`EvalConfig.flat`) is the one built before the stage configs."
    from uss_nb.pipelines import EvalConfig, SETTINGS
    from uss_nb.experiments import _key, _row_keys
    r = read_lines(RESULTS/'presets.jsonl')[0]
    cfg = EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in r['config'].items()})
    key = _key(r['data'], cfg)
    then, now = json.loads(r['key'])[1], json.loads(key)[1]
    assert {k: now[k] for k in then} == then and set(now) == set(SETTINGS)    # every setting the row had: same name, same value
    assert key in _row_keys(r) and json.dumps(cfg.flat()) == json.dumps({k: now[k] for k in SETTINGS})
    # the key's form is the one the row was written with: its own settings give back its stored key, byte for byte
    assert json.dumps([r['data'], {k: now[k] for k in then}], sort_keys=True) == r['key']
