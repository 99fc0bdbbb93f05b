"""The performance benchmark: `python benchmarks/bench.py [--quick] [--markdown FILE]`.

Same as `p2p-attendance bench`; see p2p_attendance/tools/bench.py and docs/benchmarks.md.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one thread, like the app's workers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2p_attendance.tools.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
