# shellcheck shell=bash
# The derivation's attributes (src, out, ...) are set by Nix in the environment.
# shellcheck disable=SC2154
# The phases stdenv's generic builder and buildPythonApplication run for the devbox-ctl
# package (tests/nix/sandbox/check.nix), one by one, as nixpkgs runs them:
#   unpackPhase   cp -pr of the source directory (store modes kept: files 0444/0555,
#                 directories 0555), then `chmod -R u+w` of sourceRoot alone
#                 (pkgs/stdenv/generic/setup.sh, unpackFile and unpackPhase);
#   buildPhase    a wheel of sourceRoot, without build isolation (pypa-build-hook.sh);
#   installPhase  the wheel installed into $out (pypa-install-hook.sh);
#   fixupPhase    the programs made to find their package and run-time dependencies
#                 (wrap-python.nix: wrapPythonPrograms);
#   installCheckPhase  `import devbox` (python-imports-check-hook.sh), then the flake's
#                 checkPhase, which mk-python-derivation.nix runs as the installCheckPhase.
# No hooks are declared (preCheck, postCheck, ...): runHook does nothing.
set -eu -o pipefail
runHook() { :; }

echo "unpacking source archive $src"
source_name=$(basename "$src")
source_name=${source_name:33}
cp -pr --reflink=auto -- "$src" "$source_name"
chmod -R u+w -- "$sourceRoot"
cd "$sourceRoot"

echo "building a wheel of $PWD"
PYTHONPATH="$buildToolsSitePackages:$PYTHONPATH" python3 -m pip wheel --no-deps --no-build-isolation --no-index --no-cache-dir \
  --disable-pip-version-check --wheel-dir dist . >/dev/null

echo "installing into $out"
PYTHONPATH="$buildToolsSitePackages:$PYTHONPATH" python3 -m pip install --no-deps --no-index --no-cache-dir --disable-pip-version-check \
  --prefix "$out" dist/*.whl >/dev/null

# fixupPhase: wrapPythonPrograms makes each program find the package and its run-time
# dependencies whatever PYTHONPATH is, with this line after its #! (python-wrap-hook's
# patchPythonScript).
echo "wrapping the programs in $out/bin"
for program in "$out"/bin/*; do
  line="import sys;import site;import functools;sys.argv[0] = '${program##*/}';"
  line+="functools.reduce(lambda k, p: site.addsitedir(p, k), ['$out/$sitePackages','$runtimeSitePackages'], site._init_pathinfo());"
  { head -n 1 "$program" && echo "$line" && tail -n +2 "$program"; } >"$program.wrapped"
  mv "$program.wrapped" "$program"
  chmod 0555 "$program"
done

echo "checking the imports: $pythonImportsCheck"
for module in $pythonImportsCheck; do
  PYTHONPATH="$out/$sitePackages:$PYTHONPATH" python3 -c "import $module"
done

echo "running the check phase"
eval "$checkPhase"
