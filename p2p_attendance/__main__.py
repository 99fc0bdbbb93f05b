"""`python -m p2p_attendance`: the command line (also the PyInstaller bundle's entry point)."""
import multiprocessing

from p2p_attendance.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
