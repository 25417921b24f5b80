"""Rewrite a CUDA source for the CPU simulator (tests/gpu/sim/README.md).

Two rewrites, nothing else:
  k<<<cfg>>>(args);            ->  sim_launch(sim_cfg(cfg), [&] { k(args); });
  extern __shared__ T name[];  ->  T *name = (T *)sim_dyn_smem();
Usage: prep.py IN.cu OUT.cpp
"""
import os
import re
import sys

src = open(sys.argv[1]).read()
launch = re.compile(r'([A-Za-z_][\w:]*(?:<[^;<>]*>)?)\s*<<<(.*?)>>>\s*\((.*?)\);', re.S)
src, n = launch.subn(lambda m: f'sim_launch(sim_cfg({m.group(2)}), [&] {{ {m.group(1)}({m.group(3)}); }});', src)
src = re.sub(r'extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;', r'\1 *\2 = (\1 *)sim_dyn_smem();', src)
if '<<<' in src:
    sys.exit(f'prep.py: a launch in {sys.argv[1]} was not rewritten')
os.makedirs(os.path.dirname(os.path.abspath(sys.argv[2])), exist_ok=True)
open(sys.argv[2], 'w').write(f'#line 1 "{sys.argv[1]}"\n' + src)
