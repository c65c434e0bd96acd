"""Tests for notebooks/colab_stylegan_jax.ipynb: a valid nbformat-4 notebook whose code compiles and whose
commands name files, console scripts, flags and config keys that exist in this repository.
"""
import configparser
import importlib
import importlib.util
import json
import pathlib
import re
import shlex

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / 'notebooks' / 'colab_stylegan_jax.ipynb'
SYSTEM_TOOLS = {'git', 'pip', 'python'}        # commands the notebook may run besides our console scripts
SUBCOMMAND_SCRIPTS = {'data-prep'}             # scripts whose first argument is a subcommand
TRAIN_CONFIGS = ('configs/colab_tpu.py', 'configs/colab_gpu.py')  # what CONFIG becomes in the notebook


@pytest.fixture(scope='module')
def nb() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding='utf-8'))


def source(cell: dict) -> str:
    s = cell['source']
    return s if isinstance(s, str) else ''.join(s)


def code_cells(nb: dict) -> list[str]:
    return [source(c) for c in nb['cells'] if c['cell_type'] == 'code']


def shell_commands(nb: dict) -> list[list[str]]:
    """`!` lines of the code cells as argv lists ({VAR} expansions replaced by 'X'), split at && and ;."""
    out = []
    for src in code_cells(nb):
        for line in src.splitlines():
            line = line.strip()
            if not line.startswith('!'):
                continue
            line = re.sub(r'\{[^}]*\}', 'X', line[1:])
            for part in re.split(r'&&|;', line):
                if part.strip():
                    out.append(shlex.split(part))
    return out


def console_scripts() -> dict[str, str]:
    """name -> 'module:function' from setup.cfg [options.entry_points] console_scripts."""
    cp = configparser.ConfigParser()
    cp.read(REPO / 'setup.cfg')
    text = cp['options.entry_points']['console_scripts']
    pairs = [line.split('=', 1) for line in text.strip().splitlines() if '=' in line]
    return {k.strip(): v.strip() for k, v in pairs}


def test_valid_nbformat4(nb):
    assert nb['nbformat'] == 4
    assert isinstance(nb['nbformat_minor'], int) and nb['nbformat_minor'] >= 5  # cell ids need 4.5
    assert isinstance(nb['metadata'], dict) and nb['metadata']['kernelspec']['language'] == 'python'
    assert nb['cells'], 'empty notebook'
    ids = []
    for cell in nb['cells']:
        assert cell['cell_type'] in ('markdown', 'code'), cell['cell_type']
        assert isinstance(cell['metadata'], dict)
        assert isinstance(cell['source'], (str, list))
        if isinstance(cell['source'], list):
            assert all(isinstance(s, str) for s in cell['source'])
        assert re.fullmatch(r'[a-zA-Z0-9_-]{1,64}', cell['id'])
        ids.append(cell['id'])
        if cell['cell_type'] == 'code':
            assert cell['outputs'] == [] and cell['execution_count'] is None  # committed without outputs
        else:
            assert 'outputs' not in cell and 'execution_count' not in cell
    assert len(ids) == len(set(ids)), 'duplicate cell ids'


def test_validates_with_nbformat_when_installed():
    nbformat = pytest.importorskip('nbformat')
    nbformat.validate(nbformat.read(str(NOTEBOOK), as_version=4))


def test_code_cells_compile(nb):
    """Each code cell is Python once IPython's `!` and `%` lines are blanked (kept as `pass` so that
    indented blocks stay valid)."""
    for i, src in enumerate(code_cells(nb)):
        lines = [re.sub(r'^(\s*)[!%].*$', r'\1pass', line) for line in src.splitlines()]
        compile('\n'.join(lines) + '\n', f'{NOTEBOOK.name}[code cell {i}]', 'exec')


def test_referenced_files_exist(nb):
    text = ''.join(source(c) for c in nb['cells'])
    paths = set(re.findall(r'\bconfigs/[\w/]+\.py\b', text))
    assert set(TRAIN_CONFIGS) <= paths and 'configs/data/witcher.py' in paths
    for p in sorted(paths):
        assert (REPO / p).is_file(), f'the notebook names {p}, which does not exist'


def test_commands_are_console_scripts_or_known_tools(nb):
    scripts = console_scripts()
    used = set()
    for argv in shell_commands(nb):
        name = argv[0]
        assert name in scripts or name in SYSTEM_TOOLS, f'unknown command {name!r} in the notebook'
        if name == 'python' and argv[1].endswith('.py'):
            assert (REPO / argv[1]).is_file(), argv[1]
        used.add(name)
    assert {'stylegan-convert', 'stylegan-sample', 'stylegan-metrics', 'data-prep'} <= used


def test_console_script_flags_exist(nb, capsys):
    """Every --flag given to a console script is in that script's --help (parsers run in-process)."""
    scripts = console_scripts()
    for argv in shell_commands(nb):
        if argv[0] not in scripts:
            continue
        module, func = scripts[argv[0]].split(':')
        main = getattr(importlib.import_module(module), func)
        sub = [argv[1]] if argv[0] in SUBCOMMAND_SCRIPTS else []
        with pytest.raises(SystemExit) as e:
            main(sub + ['--help'])
        assert e.value.code == 0
        help_text = capsys.readouterr().out
        for tok in argv[1:]:
            if tok.startswith('--'):
                flag = tok.split('=', 1)[0]
                assert re.search(rf'(?<![\w-]){re.escape(flag)}(?![\w-])', help_text), \
                    f'{argv[0]} has no flag {flag}'


def test_run_train_overrides_name_config_keys(nb):
    """`--config.a.b=` overrides in the training command exist in both Colab configs."""
    cmds = [a for a in shell_commands(nb) if a[:2] == ['python', 'run_train.py']]
    assert cmds, 'no training command'
    keys = set()
    for argv in cmds:
        flags = {t.split('=', 1)[0] for t in argv[2:] if t.startswith('--')}
        assert {'--config', '--workdir'} <= flags
        keys |= {f[len('--config.'):] for f in flags if f.startswith('--config.')}
    text = ''.join(source(c) for c in nb['cells'])
    keys |= set(re.findall(r'--config\.([a-z_.0-9]+)=', text))  # also the ones suggested in markdown
    assert {'transfer.path', 'data.path', 'data.photo_ratio'} <= keys
    for path in TRAIN_CONFIGS:
        spec = importlib.util.spec_from_file_location('_nb_config', REPO / path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config()
        for key in sorted(keys):
            node = config
            for part in key.split('.'):
                assert part in node, f'{path}: no key {key}'
                node = node[part]


def test_covers_the_workflow(nb):
    """The steps the notebook exists for are all there, in order, in its code cells."""
    text = ''.join(code_cells(nb))
    steps = ['pip install', 'stylegan-convert', 'data-prep all', 'run_train.py', 'loss_curves.png',
             'stylegan-sample --checkpoint {WORKDIR} --seeds 0-31 --trunc 0.7 --grid', 'stylegan-metrics']
    positions = [text.find(s) for s in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions))
    assert positions == sorted(positions)
    markdown = ''.join(source(c) for c in nb['cells'] if c['cell_type'] == 'markdown')
    assert 'photo_ratio' in markdown
