#!/usr/bin/env bash
# Build DocMind from a clean virtual environment: dist/DocMind (single file), dist/DocMind-app (folder).
# Prints the artifact sizes, the largest parts and the SHA-256 at the end.
#   packaging/build.sh                              clean venv in build/venv (rebuilt when pyproject.toml changes)
#   DOCMIND_BUILD_VENV=.venv packaging/build.sh     use an existing venv instead (installs the `package` extra)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OPENCV_GUI_VERSION='from importlib.metadata import version; print(version("opencv-python"))'  # fails when absent

if [ -n "${DOCMIND_BUILD_VENV:-}" ]; then
  VENV=$DOCMIND_BUILD_VENV
  "$VENV/bin/python" -c 'import PyInstaller' 2>/dev/null || "$VENV/bin/pip" install -q -e '.[package]'
  "$VENV/bin/python" -c "$OPENCV_GUI_VERSION" >/dev/null 2>&1 &&
    echo "note: $VENV has opencv-python, the GUI build (~115 MB more); the clean build venv ships the headless one" >&2
else
  VENV=build/venv
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # The CPU build of torch first; a plain `torch` would pull a multi-GB CUDA build.
    "$VENV/bin/pip" install -q torch==2.13.0
    "$VENV/bin/pip" install -q '.[package]'
    touch "$VENV/.installed"
  fi
  # RapidOCR declares opencv-python, the GUI build (Qt, X11: ~115 MB more unpacked); OCR needs only cv2's
  # image functions, so the app ships the headless build of the same version instead.
  if opencv=$("$VENV/bin/python" -c "$OPENCV_GUI_VERSION" 2>/dev/null); then
    "$VENV/bin/pip" uninstall -q -y opencv-python
    "$VENV/bin/pip" install -q --no-deps "opencv-python-headless==$opencv"
  fi
  "$VENV/bin/pip" install -q --no-deps --force-reinstall .  # this checkout's docmind, not an older copy
fi

rm -rf dist/DocMind dist/DocMind.exe dist/DocMind-app dist/DocMind.app dist/DocMind-plain-onefile
started=$(date +%s)
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN build.spec
echo "build took $(( $(date +%s) - started )) s"
