"""Offline docs: nbdev's notebook processing, then smalldocs renders the same `_quarto.yml` project into `_docs/`.

`nbdev_docs` needs Quarto (which cannot be installed offline); this runs the same steps as nbdev's `_pre_docs`
but skips its attempt to download and install Quarto, then hands `_proc/` to the pure-Python renderer.
Usage: python tools/build_docs.py [--no-render]
"""
import shutil, subprocess, sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.serve import proc_nbs
import nbdev.doclinks

def main(render=True):
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    proc = Path(proc_nbs(cfg.nbs_path, n_workers=0))
    if not render: return proc
    out = cfg.config_path/'_docs'
    if out.exists(): shutil.rmtree(out)
    subprocess.run([Path(sys.executable).parent/'smalldocs', 'render', str(proc)], check=True)
    shutil.move(str(proc/'_docs'), out)
    print(f'site written to {out}')
    return out

if __name__ == '__main__': main(render='--no-render' not in sys.argv)
