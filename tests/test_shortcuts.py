"""No library shortcut (issue 14, item 4) and no withheld argument, through the grader's real
harness (one sandboxed process per exercise), on a synthetic lesson ``98_shortcuts``:

- ``mix(c, u, w)`` asks for CFG's combination; its twins are ``course_lib.guidance.cfg`` and
  ``course_lib.validate.number``. Every route to them (import, getattr, importlib, an alias,
  a thread, a helper that calls one, ``os._exit`` patched first) ends the process: 0 with a note
  naming the function. Every route to an untripped copy (reload, a fresh module from the file,
  the source through ``inspect``, the ``.pyc``, a fresh interpreter) is refused: 0.
- ``peek(x_t, eps_c, eps_u, alpha_bar, w)`` is run through lesson 03's call adapter, which
  withholds two arguments (a tensor and an integer ``y``); the reference returns ``y``, so only a
  solution that reads a withheld argument could score. Every way of reading the call stack,
  the collector, tracing, memory or a signal handler's frame scores 0.

Each attack is graded alone; the honest controls score full marks in the same run."""

import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib.coursework import grading, material, sandbox  # noqa: E402
from course_lib.exercises import Exercise  # noqa: E402
from course_lib.exercises.classifier_free_guidance import _x0_call  # noqa: E402

material.load()
from instructor.exercises.core import Graded, Grading  # noqa: E402

LESSON = "98_shortcuts"
SANDBOXED = sandbox.unavailable() is None
TWINS = ("course_lib.guidance.cfg", "course_lib.validate.number")


def _mix_cases(gen):
    c, u = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    return [(c, u, 2.5), (c[:1], u[:1], 0.7)]


def _peek_cases(gen):
    x = torch.randn(3, 2, generator=gen)
    y = int(torch.randint(10**6, (1,), generator=gen))
    return [(x, x, x, 0.5, 1.0, torch.full((2,), 7.0), y)]


def _graded(name, cases, reference, **public):
    exercise = Exercise(name=name, lesson=LESSON, points=1, public_cases=cases, tolerance=1e-6, hint="reread",
                        **public)
    return Graded(exercise, Grading(name, reference, cases, understanding="synthetic", shortcut="synthetic"))


MIX = _graded("mix", _mix_cases, lambda c, u, w: (1 + w) * c - w * u, twins=TWINS)
PEEK = _graded("peek", _peek_cases, lambda x_t, c, u, a, w, secret, y: torch.tensor([float(y)]), call=_x0_call)

HEAD = "import course_lib\nimport torch\n"
MIX_ATTACKS = {
    # name: (source of the solution cell, the twin its note must name, or None for "refused")
    "direct": ("from course_lib.guidance import cfg\ndef mix(c, u, w):\n"
               "    return cfg(lambda x, t: c, lambda x, t: u, w)(None, None)", TWINS[0]),
    "getattr": ("def mix(c, u, w):\n    f = getattr(course_lib.guidance, 'c' + 'fg')\n"
                "    return f(lambda x, t: c, lambda x, t: u, w)(None, None)", TWINS[0]),
    "importlib": ("import importlib\ndef mix(c, u, w):\n    f = importlib.import_module('course_lib.guidance').cfg\n"
                  "    return f(lambda x, t: c, lambda x, t: u, w)(None, None)", TWINS[0]),
    "alias_at_import": ("from course_lib import guidance as g\nshortcut = g.cfg\ndef mix(c, u, w):\n"
                        "    return shortcut(lambda x, t: c, lambda x, t: u, w)(None, None)", TWINS[0]),
    "in_a_thread": ("import threading\nout = []\nt = threading.Thread(target=lambda: "
                    "out.append(course_lib.guidance.cfg(lambda x, t: 1, lambda x, t: 0, 1.0)(None, None)))\n"
                    "t.start(); t.join()\ndef mix(c, u, w):\n    return (1 + w) * c - w * u", None),
    "helper_calls_twin": ("def mix(c, u, w):\n    gamma = course_lib.guidance.w_to_gamma(w)\n"
                          "    return gamma * c - (gamma - 1) * u", TWINS[1]),
    "exit_patched_first": ("import os, sys\nos._exit = lambda *a: None\nsys.exit = lambda *a: None\n"
                           "kept = course_lib.guidance.cfg(lambda x, t: 1, lambda x, t: 0, 1.0)\n"
                           "def mix(c, u, w):\n    return (1 + w) * c - w * u", TWINS[0]),
    "reload": ("import importlib\ndef mix(c, u, w):\n    g = importlib.reload(course_lib.guidance)\n"
               "    return g.cfg(lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "fresh_module_from_file": (
        "import importlib.util\ndef mix(c, u, w):\n"
        "    spec = importlib.util.spec_from_file_location('copy_of_guidance', course_lib.guidance.__file__)\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    return m.cfg(lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "getsource_exec": ("import inspect\ndef mix(c, u, w):\n    ns = {}\n"
                       "    exec(inspect.getsource(course_lib.guidance), ns)\n"
                       "    return ns['cfg'](lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "read_source_by_path": ("import os\ndef mix(c, u, w):\n    ns = {}\n"
                            "    exec(open(os.path.join(os.path.dirname(course_lib.__file__), 'guidance.py')).read(), ns)\n"
                            "    return ns['cfg'](lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "symlink_to_source": ("import os, tempfile\ndef mix(c, u, w):\n    d = tempfile.mkdtemp()\n"
                          "    os.symlink(course_lib.guidance.__file__, d + '/g.py')\n    ns = {}\n"
                          "    exec(open(d + '/g.py').read(), ns)\n"
                          "    return ns['cfg'](lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "pyc": ("import marshal, importlib.util\ndef mix(c, u, w):\n"
            "    data = open(importlib.util.cache_from_source(course_lib.guidance.__file__), 'rb').read()\n"
            "    ns = {}\n    exec(marshal.loads(data[16:]), ns)\n"
            "    return ns['cfg'](lambda x, t: c, lambda x, t: u, w)(None, None)", None),
    "fresh_interpreter": ("import subprocess, sys, pickle\ndef mix(c, u, w):\n"
                          "    code = 'import pickle,sys,course_lib.guidance as g; c,u,w = pickle.load(sys.stdin.buffer); "
                          "pickle.dump(g.cfg(lambda x,t: c, lambda x,t: u, w)(None,None), sys.stdout.buffer)'\n"
                          "    out = subprocess.run([sys.executable, '-c', code], input=pickle.dumps((c, u, w)), "
                          "capture_output=True).stdout\n    return pickle.loads(out)", None),
    "fresh_interpreter_low_level": (
        "import _posixsubprocess, os, sys, pickle\ndef mix(c, u, w):\n    r, w_ = os.pipe()\n"
        "    code = 'import os; os.write(1, b\"ran\")'\n"
        "    pid = _posixsubprocess.fork_exec([sys.executable.encode(), b'-c', code.encode()], [sys.executable.encode()],"
        " True, (w_,), None, None, -1, -1, -1, w_, -1, -1, *os.pipe(), False, False, -1, None, None, None, -1, None,"
        " False)\n    os.close(w_)\n    os.waitpid(pid, 0)\n    assert os.read(r, 10) == b'ran', 'no fresh interpreter'\n"
        "    return (1 + w) * c - w * u", None),
    "ctypes": ("import ctypes\ndef mix(c, u, w):\n    ctypes.CDLL(None)\n    return (1 + w) * c - w * u", None),
    "fresh_thread_module": ("import importlib.util\nm = importlib.util.module_from_spec(importlib.util.find_spec("
                            "'_thread'))\nm.start_new_thread(lambda: course_lib.guidance.cfg(1, 2, 3), ())\n"
                            "def mix(c, u, w):\n    return (1 + w) * c - w * u", None),
    "guard_code_read": ("import _imp\nreal = [c for c in _imp.create_builtin.__code__.co_consts if callable(c)]\n"
                        "def mix(c, u, w):\n    return (1 + w) * c - w * u", None),
}
HONEST_MIX = {
    "honest": "def mix(c, u, w):\n    ### BEGIN SOLUTION\n    return (1 + w) * c - w * u\n    ### END SOLUTION",
    "honest_with_library_helpers": "def mix(c, u, w):\n    return torch.lerp(u, c, 1 + w) + 0 * course_lib.toy.anisotropic().num_classes",
}
FIND = textwrap.dedent("""\
    def _find(frame):
        while frame is not None:
            if 'y' in frame.f_locals and isinstance(frame.f_locals['y'], int):
                return frame.f_locals['y']
            frame = frame.f_back
        raise LookupError('no withheld y on this stack')
    """)
PEEK_ATTACKS = {
    "getframe": "import sys\ndef peek(x_t, c, u, a, w):\n    return torch.tensor([float(_find(sys._getframe()))])",
    "inspect_stack": "import inspect\ndef peek(x_t, c, u, a, w):\n"
                     "    return torch.tensor([float(_find(inspect.stack()[0].frame))])",
    "traceback": "def peek(x_t, c, u, a, w):\n    try:\n        1 / 0\n    except ZeroDivisionError as e:\n"
                 "        return torch.tensor([float(_find(e.__traceback__.tb_frame))])",
    "traceback_module": "import traceback\ndef peek(x_t, c, u, a, w):\n"
                        "    s = traceback.extract_stack()\n    return torch.tensor([float(len(s))])",
    "generator_frame": "def peek(x_t, c, u, a, w):\n    def g():\n        yield 1\n    gen = g(); next(gen)\n"
                       "    return torch.tensor([float(_find(gen.gi_frame))])",
    "current_frames": "import sys\ndef peek(x_t, c, u, a, w):\n"
                      "    return torch.tensor([float(_find(f)) for f in sys._current_frames().values()][:1])",
    "settrace": "import sys\nseen = []\ndef peek(x_t, c, u, a, w):\n    sys.settrace(lambda f, e, a: seen.append(f))\n"
                "    return torch.tensor([0.0])",
    "gc_referrers": "import gc\ndef peek(x_t, c, u, a, w):\n"
                    "    return torch.tensor([float(len(gc.get_referrers(x_t)))])",
    "gc_saveall_garbage": textwrap.dedent("""\
        import gc
        def peek(x_t, c, u, a, w):
            gc.set_debug(gc.DEBUG_SAVEALL)
            def g():
                try:
                    raise ValueError
                except ValueError as e:
                    e.keep = e
            g(); gc.collect()
            frames = [o for o in gc.garbage if type(o).__name__ == 'frame']
            for f in frames:
                try:
                    return torch.tensor([float(_find(f))])
                except LookupError:
                    pass
            raise LookupError(f'{len(frames)} frames in gc.garbage, no withheld y')"""),
    "signal_handler_frame": "import signal, os\ngot = []\n"
                            "def peek(x_t, c, u, a, w):\n    signal.signal(signal.SIGUSR1, lambda s, f: got.append(f))\n"
                            "    os.kill(os.getpid(), signal.SIGUSR1)\n    return torch.tensor([float(_find(got[0]))])",
    "proc_self_mem": "def peek(x_t, c, u, a, w):\n    open('/proc/self/maps').read()\n    return torch.tensor([0.0])",
    "thread_objects": "import threading\ndef peek(x_t, c, u, a, w):\n    for t in threading.enumerate():\n"
                      "        for arg in getattr(t, '_args', ()):\n            if isinstance(arg, dict) and 'cases' in arg:\n"
                      "                return torch.tensor([float(arg['cases'][0][-1])])\n"
                      "    raise LookupError('no job on any thread object')",
    "main_module": "import sys\ndef peek(x_t, c, u, a, w):\n    for v in vars(sys.modules['__main__']).values():\n"
                   "        if isinstance(v, (list, dict)) and v:\n            return torch.tensor([float(len(v))])\n"
                   "    raise LookupError('nothing in __main__')",
    "deepcopy_patched": "import copy\nseen = []\n_real = copy.deepcopy\ncopy.deepcopy = lambda x, memo=None: "
                        "(seen.append(x), _real(x, memo))[1]\ndef peek(x_t, c, u, a, w):\n"
                        "    return torch.tensor([float(seen[0][-1])])",
    # a builtin the grader's thread calls, patched to run there and walk its frames through gc.garbage
    "builtin_hijack_gc_frames": textwrap.dedent("""\
        import builtins, gc
        _enumerate, stash = builtins.enumerate, []
        def spy(*a, **k):
            if not stash:
                gc.set_debug(gc.DEBUG_SAVEALL)
                def g():
                    try:
                        raise ValueError
                    except ValueError as e:
                        e.keep = e
                g(); gc.collect()
                for o in list(gc.garbage):
                    f = o if type(o).__name__ == 'frame' else None
                    while f is not None:
                        for v in f.f_locals.values():
                            if isinstance(v, list) and v and isinstance(v[0], tuple) and len(v[0]) == 7:
                                stash.extend(case[-1] for case in v)
                        f = f.f_back
            return _enumerate(*a, **k)
        builtins.enumerate = spy
        def peek(x_t, c, u, a, w):
            return torch.tensor([float(stash.pop(0))])"""),
    "evil_return_value": textwrap.dedent("""\
        class Evil(float):
            @property
            def __class__(self):
                return float
        def peek(x_t, c, u, a, w):
            return (Evil(1.0),)"""),
}


def _grade(graded, source):
    limits = grading.Limits(cell_timeout=30)
    return grading._grade_functions([graded], {graded.name: source}, limits, sandboxed=SANDBOXED)[graded.name]


@pytest.fixture(scope="module")
def results():
    jobs = {f"mix/{k}": (MIX, HEAD + v[0]) for k, v in MIX_ATTACKS.items()}
    jobs |= {f"mix/{k}": (MIX, HEAD + v) for k, v in HONEST_MIX.items()}
    jobs |= {f"peek/{k}": (PEEK, HEAD + FIND + v) for k, v in PEEK_ATTACKS.items()}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_grade, graded, source) for name, (graded, source) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(HONEST_MIX))
def test_honest_solutions_and_allowed_helpers_score_full_marks(results, name):
    row = results[f"mix/{name}"]
    assert row.points == 1, row.message


@pytest.mark.parametrize("name", [k for k, v in MIX_ATTACKS.items() if v[1]])
def test_reaching_a_twin_by_any_route_scores_zero_and_names_it(results, name):
    row = results[f"mix/{name}"]
    assert row.points == 0, row.message
    assert f"reached {MIX_ATTACKS[name][1]}," in row.message, row.message


@pytest.mark.parametrize("name", [k for k, v in MIX_ATTACKS.items() if not v[1]])
def test_an_untripped_copy_of_the_library_is_out_of_reach(results, name):
    row = results[f"mix/{name}"]
    assert row.points == 0, row.message
    assert "grader error" not in row.message, row.message


@pytest.mark.parametrize("name", list(PEEK_ATTACKS))
def test_withheld_arguments_stay_out_of_reach(results, name):
    row = results[f"peek/{name}"]
    assert row.points == 0, row.message
    assert "grader error" not in row.message, row.message


def test_the_guard_says_what_it_refused(results):
    assert "refuses sys._getframe" in results["peek/getframe"].message
    assert "refuses reading tb_frame" in results["peek/traceback"].message
    assert "refuses opening" in results["mix/read_source_by_path"].message
    assert "source code" in results["mix/getsource_exec"].message  # inspect turns the refusal into its own OSError
    assert "reload" in results["mix/reload"].message or "refuses" in results["mix/reload"].message
    assert "rebinds builtins.enumerate" in results["peek/builtin_hijack_gc_frames"].message
    assert "refuses _thread.start_new_thread" in results["mix/in_a_thread"].message
    assert "refuses a fresh _thread" in results["mix/fresh_thread_module"].message
    assert "refuses gc.set_debug" in results["peek/gc_saveall_garbage"].message
