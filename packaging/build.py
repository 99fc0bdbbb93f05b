"""Build the P2P Attendance bundle (PyInstaller, one folder) and check what went into it.

    python packaging/build.py               # -> dist/p2p-attendance/p2p-attendance
    python packaging/build.py --self-test   # ... then run the bundle's --self-test

Run it with the Python of the environment the app is installed in (pip install -e '.[package]').
The bundle runs on systems with a C library (glibc) at least as new as this build host's.
"""
from __future__ import annotations

import argparse
import ctypes.util
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "p2p-attendance.spec"
NAME = "p2p-attendance"
# Must not be in the bundle (test extras, unused models); each is a path relative to _internal.
FORBIDDEN = (
    "pytest", "_pytest", "matplotlib", "skimage", "scipy", "PIL", "tkinter", "_tkinter",
    "face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
    "face_recognition_models/models/mmod_human_face_detector.dat",
)
REQUIRED = (
    "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
    "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    "resources/selftest_face.jpg",
    "resources/icon.png",
)


def log(text: str) -> None:
    """Print a line of the build's progress."""
    print(f"[build] {text}", flush=True)


def warn_missing_xcb_libraries() -> None:
    """Qt's xcb platform plug-in (the X11 window) is only bundled when its libraries are here."""
    if not sys.platform.startswith("linux"):
        return
    missing = [lib for lib in ("xcb-icccm", "xcb-keysyms", "xcb-cursor") if ctypes.util.find_library(lib) is None]
    if missing:
        log(
            f"WARNING: lib{', lib'.join(missing)} not found: the bundle will lack Qt's X11 (xcb) plug-in and the GUI will not open on X11 desktops "
            "(the headless volunteer and QT_QPA_PLATFORM=offscreen still work). "
            "Install them first: sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0"
        )


def du(path: Path) -> int:
    """Bytes in the files under path (links not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def check_bundle(bundle: Path) -> list[str]:
    """What is wrong with a built bundle: missing or forbidden files (empty when none)."""
    problems = []
    internal = bundle / "_internal"
    exe = bundle / (NAME + (".exe" if os.name == "nt" else ""))
    if not exe.is_file():
        problems.append(f"executable missing: {exe}")
    for rel in REQUIRED:
        if not (internal / rel).exists():
            problems.append(f"missing from the bundle: {rel}")
    for rel in FORBIDDEN:
        if (internal / rel).exists():
            problems.append(f"must not be in the bundle: {rel}")
    plugins = internal / "PySide6" / "Qt" / "plugins" / "platforms"
    found = sorted(p.name for p in plugins.glob("*")) if plugins.is_dir() else []
    log(f"Qt platform plug-ins: {', '.join(found) or 'NONE'}")
    if not any("offscreen" in n for n in found):
        problems.append("Qt's offscreen platform plug-in is missing")
    if sys.platform.startswith("linux") and not any("xcb" in n for n in found):
        log("WARNING: no xcb plug-in in the bundle: the GUI will not open on X11 (see the warning above)")
    return problems


def unresolved_libraries(bundle: Path) -> dict[str, list[str]]:
    """Linux: libraries that bundled extension modules and Qt plug-ins need but neither the bundle
    nor this host provides (the target PCs must then have them)."""
    internal = bundle / "_internal"
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))
    missing: dict[str, list[str]] = {}
    for path in sorted(internal.rglob("*.so*")):
        if path.is_symlink() or not (path.name.endswith(".so") or "/plugins/" in path.as_posix()):
            continue
        try:
            out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
        for line in out.splitlines():
            if "not found" in line:
                users = missing.setdefault(line.split()[0], [])
                if str(path.relative_to(internal)) not in users:
                    users.append(str(path.relative_to(internal)))
    return missing


def largest_parts(internal: Path, count: int = 8) -> str:
    """The biggest entries of the bundle's _internal folder, as text."""
    sizes = {}
    for child in internal.iterdir():
        sizes[child.name] = du(child) if child.is_dir() else child.stat().st_size
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:count]
    return ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in top)


def main(argv: list[str] | None = None) -> int:
    """Build the bundle, check it, and optionally run its --self-test; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="where the bundle goes (default: dist/)")
    parser.add_argument("--work", default=str(ROOT / "build" / "pyinstaller"), help="PyInstaller's work folder")
    parser.add_argument("--self-test", action="store_true", help="run the bundle's --self-test after building")
    args = parser.parse_args(argv)

    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        log(f"PyInstaller is not installed for {sys.executable}: pip install -e '.[package]'")
        return 2
    import p2p_attendance

    log(f"P2P Attendance {p2p_attendance.__version__}; Python {platform.python_version()} ({sys.executable}); {platform.platform()}")
    if sys.platform.startswith("linux"):
        libc, version = platform.libc_ver()
        log(f"the bundle will need {libc or 'the C library'} {version or '?'} or newer on the target PCs")
    warn_missing_xcb_libraries()

    dist = Path(args.dist)
    bundle = dist / NAME
    started = time.monotonic()
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", args.work, str(SPEC)]
    log(" ".join(command))
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        log(f"PyInstaller failed with status {result.returncode}")
        return result.returncode or 1
    elapsed = time.monotonic() - started

    if sys.platform.startswith("linux"):  # a desktop entry and icon, for whoever installs the folder
        shutil.copy2(ROOT / "packaging" / "p2p-attendance.desktop", bundle / "p2p-attendance.desktop")
        shutil.copy2(ROOT / "resources" / "icon.png", bundle / "p2p-attendance.png")

    problems = check_bundle(bundle)
    if sys.platform.startswith("linux"):
        for lib, users in unresolved_libraries(bundle).items():
            log(f"note: {lib} is not bundled and not on this host; the target PCs need it for {', '.join(users[:3])}")
    size = du(bundle)
    log(f"built {bundle} in {elapsed:.0f} s: {size / 2**20:.0f} MB")
    log(f"largest parts: {largest_parts(bundle / '_internal')}")
    for problem in problems:
        log(f"ERROR: {problem}")
    if problems:
        return 1

    if args.self_test:
        exe = bundle / (NAME + (".exe" if os.name == "nt" else ""))
        log(f"running {exe} --self-test")
        t0 = time.monotonic()
        status = subprocess.run([str(exe), "--self-test"]).returncode
        log(f"self-test exited {status} after {time.monotonic() - t0:.1f} s")
        return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
