#!/usr/bin/env bash
# Re-create book/_static/mathjax from the npm registry (run by a maintainer, not by `make book`:
# the book serves the vendored copy, so reading or building it needs no network).
# MathJax 3.2.2, Apache-2.0 (book/_static/mathjax/LICENSE). Kept: the TeX -> CommonHTML
# component, its fonts, the TeX extensions it autoloads, and the context menu.
set -euo pipefail
version=${1:-3.2.2}
dest=book/_static/mathjax
tmp=$(mktemp -d)
(cd "$tmp" && npm pack "mathjax@$version" >/dev/null && tar xzf "mathjax-$version.tgz")
src=$tmp/package
rm -rf "$dest"
mkdir -p "$dest/es5/output/chtml/fonts" "$dest/es5/input/tex" "$dest/es5/ui"
cp "$src/LICENSE" "$dest/"
cp "$src/es5/tex-chtml.js" "$dest/es5/"
cp -r "$src/es5/output/chtml/fonts/woff-v2" "$dest/es5/output/chtml/fonts/"
cp -r "$src/es5/input/tex/extensions" "$dest/es5/input/tex/"
cp "$src/es5/ui/menu.js" "$dest/es5/ui/"
echo "mathjax@$version (npm) sha256 $(sha256sum "$tmp/mathjax-$version.tgz" | cut -d' ' -f1)" > "$dest/VERSION"
rm -rf "$tmp"
echo "vendored mathjax@$version into $dest"
