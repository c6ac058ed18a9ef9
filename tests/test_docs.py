"""The developer docs cannot drift: the module map names every module of course_lib, and the
table of which library functions each lesson calls is the one generated from the lessons."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import lesson_map  # noqa: E402

PAGE = (ROOT / "docs" / "development.md").read_text()


def test_the_module_map_names_every_module_and_no_other():
    section = PAGE.split("| layer | module |", 1)[1].split("\n\n", 1)[0]
    named = {name for row in section.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[2])}
    assert named == set(lesson_map.modules())


def test_the_lesson_table_is_generated_from_the_lessons():
    assert lesson_map.table() in PAGE, "regenerate it: python tools/lesson_map.py"
