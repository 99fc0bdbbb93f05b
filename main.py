"""Entry point for `python main.py` and the PyInstaller bundle: the GUI by default, or any subcommand."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from p2p_attendance.cli import main

    # No subcommand means the desktop app, as a double-click on the bundle expects.
    raise SystemExit(main(sys.argv[1:] or ["gui"]))
