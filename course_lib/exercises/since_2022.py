"""Graded exercises of lesson 05 (guidance since 2022); helper D adds them."""

from __future__ import annotations

from .core import Exercise

LESSON = "05_guidance_since_2022"

EXERCISES: list[Exercise] = []
