"""The developer docs cannot drift: the module map names every module of course_lib, and the
table of which library functions each lesson calls is the one generated from the lessons."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import lesson_map  # noqa: E402
import test_structure  # noqa: E402

PAGE = (ROOT / "docs" / "development.md").read_text()


def module_layers() -> dict[str, int]:
    """``module -> layer`` as the page's module map states it."""
    section = PAGE.split("| layer | module |", 1)[1].split("\n\n", 1)[0]
    layers = {}
    for row in section.splitlines()[2:]:
        cells = row.split("|")
        layers.update({name: int(cells[1]) for name in re.findall(r"`(\w+)`", cells[2])})
    return layers


def test_the_module_map_names_every_module_and_no_other():
    assert set(module_layers()) == set(lesson_map.modules())


def test_every_module_imports_only_modules_of_lower_layers():
    layers, top = module_layers(), lambda dotted: dotted.split(".")[1]
    wrong = sorted(
        f"{source} (layer {layers[top(source)]}) imports {target} (layer {layers[top(target)]})"
        for source, targets in test_structure.graph().items() if source != "course_lib"
        for target in targets if target != "course_lib" and top(target) != top(source)
        and layers[top(target)] >= layers[top(source)]
    )
    assert not wrong, "move the rows in docs/development.md:\n" + "\n".join(wrong)


def test_the_lesson_table_is_generated_from_the_lessons():
    assert lesson_map.table() in PAGE, "regenerate it: python tools/lesson_map.py"
