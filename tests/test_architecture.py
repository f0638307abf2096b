"The modules follow the data flow: a module imports only modules whose notebooks come before its own (no module reaches upward)."
import ast, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/'uss_nb'
NBS = ROOT/'nbs'

def notebook_numbers() -> dict:
    "Module name -> the number of the notebook it is exported from (`#| default_exp NAME` in `NN_stem.ipynb`)."
    out = {}
    for nb in sorted(NBS.glob('[0-9][0-9]_*.ipynb')):
        m = re.search(r'#\| default_exp (\w+)', nb.read_text())
        assert m, f'{nb.name} has no default_exp'
        assert m.group(1) not in out, f'{m.group(1)} is exported from two notebooks'
        out[m.group(1)] = int(nb.name[:2])
    return out

def imported_modules(path:Path, modules) -> set:
    "The `uss_nb` modules `path` imports, at module level or inside functions: `from .x import`, `from uss_nb.x import`, `import uss_nb.x`, `from uss_nb import x`."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('uss_nb.')}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: base = mod                                     # from .x import ..., from . import x
            elif mod == 'uss_nb' or mod.startswith('uss_nb.'): base = mod[len('uss_nb.'):] if '.' in mod else ''
            else: continue
            if base: found.add(base.split('.')[0])
            else: found |= {a.name for a in node.names if a.name in modules}   # from uss_nb import x
    return found & set(modules)

def import_graph() -> dict:
    "Module -> the `uss_nb` modules it imports."
    nums = notebook_numbers()
    return {m: imported_modules(PKG/f'{m}.py', nums) - {m} for m in nums}

def test_every_module_has_one_numbered_notebook():
    nums = notebook_numbers()
    mods = {p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_')}
    assert mods == set(nums), f'modules without a notebook: {mods - set(nums)}; notebooks without a module: {set(nums) - mods}'
    assert len(set(nums.values())) == len(nums), 'two notebooks share a number'

def test_the_graph_sees_both_kinds_of_import(tmp_path):
    f = tmp_path/'m.py'
    f.write_text('from .core import x\ndef g():\n    from uss_nb.cli import main\n    import uss_nb.demo\n    from uss_nb import refine\n    from uss_nb import __version__\n')
    assert imported_modules(f, {'core': 0, 'cli': 19, 'demo': 16, 'refine': 14}) == {'core', 'cli', 'demo', 'refine'}

def test_no_module_imports_a_later_notebook():
    nums, graph = notebook_numbers(), import_graph()
    upward = sorted(f'{m} ({nums[m]:02d}) imports {d} ({nums[d]:02d})' for m, ds in graph.items() for d in ds if nums[d] > nums[m])
    assert not upward, 'modules reaching upward in the data flow:\n' + '\n'.join(upward)

def test_show_doc_cells_hold_only_show_doc():
    "A cell that calls `show_doc` at top level holds nothing else: otherwise Jupyter (and the docs) show no API entry for it."
    import ast, json
    bad = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            src = ''.join(c['source']) if c['cell_type'] == 'code' else ''
            try: body = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))).body
            except SyntaxError: continue
            calls = [isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and getattr(s.value.func, 'id', None) == 'show_doc' for s in body]
            if any(calls) and not all(calls): bad.append(f"{nb.name} cell {c.get('id')}")
    assert not bad, f'show_doc mixed with other code in: {bad}'
