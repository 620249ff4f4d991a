#!/usr/bin/env bash
# Build dist/DocMind-<version>.dmg from dist/DocMind.app (made by packaging/build.sh on macOS).
# Optional signing and notarization (both needed for Gatekeeper to open it without a warning):
#   CODESIGN_IDENTITY="Developer ID Application: ..."  signs the .app (hardened runtime) and the .dmg
#   NOTARY_PROFILE=<keychain profile of `xcrun notarytool store-credentials`>  notarizes and staples
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' docmind/__init__.py)
APP=dist/DocMind.app
DMG="dist/DocMind-$VERSION.dmg"
[ -d "$APP" ] || { echo "$APP is missing: run packaging/build.sh on macOS first" >&2; exit 1; }

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --deep --force --options runtime --timestamp \
    --entitlements installers/macos/entitlements.plist --sign "$CODESIGN_IDENTITY" "$APP"
  codesign --verify --deep --strict "$APP"
fi

STAGING=$(mktemp -d)
trap 'rm -rf "$STAGING"' EXIT
cp -R "$APP" "$STAGING/"
ln -s /Applications "$STAGING/Applications"
rm -f "$DMG"
hdiutil create -volname "DocMind" -srcfolder "$STAGING" -fs HFS+ -format UDZO -ov "$DMG"

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$CODESIGN_IDENTITY" "$DMG"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
fi
shasum -a 256 "$DMG" | tee "$DMG.sha256"
