"""Instructor-only material of Guidance Lab: the solved source lessons (``lessons/``) and the
graded exercises' references and hidden cases (``exercises``). Not part of the installed
package: ``python -m course_lib.coursework grade`` loads it from this folder (``--instructor``)
and a graded submission runs where it cannot read it."""
