#!/usr/bin/env bash
# Build DocMind-<version>-x86_64.AppImage from the app folder made by packaging/build.sh (dist/DocMind-app).
# Needs appimagetool (https://github.com/AppImage/appimagetool) on PATH or in $APPIMAGETOOL.
# Without it, stops after making dist/DocMind.AppDir (runnable as dist/DocMind.AppDir/AppRun).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' docmind/__init__.py)
APPDIR=dist/DocMind.AppDir
[ -x dist/DocMind-app/DocMind ] || { echo "dist/DocMind-app is missing: run packaging/build.sh first" >&2; exit 1; }

rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" "$APPDIR/usr/share/icons/hicolor/512x512/apps"
cp -a dist/DocMind-app "$APPDIR/usr/lib/docmind"
install -m 755 installers/linux/AppRun "$APPDIR/AppRun"
install -m 644 installers/linux/docmind.desktop "$APPDIR/docmind.desktop"
install -m 644 installers/linux/docmind.desktop "$APPDIR/usr/share/applications/docmind.desktop"
install -m 644 packaging/icons/docmind.png "$APPDIR/docmind.png"
install -m 644 packaging/icons/docmind.png "$APPDIR/usr/share/icons/hicolor/512x512/apps/docmind.png"
echo "made $APPDIR"

TOOL=${APPIMAGETOOL:-$(command -v appimagetool || true)}
if [ -z "$TOOL" ]; then
  echo "appimagetool not found: install it to pack $APPDIR into an AppImage" >&2
  exit 0
fi
OUT="dist/DocMind-$VERSION-x86_64.AppImage"
ARCH=x86_64 "$TOOL" --no-appstream "$APPDIR" "$OUT"
sha256sum "$OUT" | tee "$OUT.sha256"
