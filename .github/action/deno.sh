#!/usr/bin/env bash
# The action's Deno (see action.yml): `locate` names the tool folder, DENO_DIR and the cache key of this Deno
# version for this runner and this checkout's deno.lock; `install` puts Deno there from the npm registry (the
# npm package `deno` of that version: a native binary for the runner's platform) and downloads the npm
# dependencies lakerun's modules import, into DENO_DIR. Inputs come from the environment, never from the text
# of a workflow: LAKERUN_DENO_VERSION (x.y.z), and GitHub's RUNNER_TOOL_CACHE, RUNNER_TEMP, RUNNER_OS,
# RUNNER_ARCH, GITHUB_ACTION_PATH, GITHUB_OUTPUT.
set -euo pipefail

version="${LAKERUN_DENO_VERSION:-}"
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "::error title=lakerun::deno-version must be a version such as 2.9.6, not '${version//[^A-Za-z0-9._-]/?}'"
  exit 2
fi
action="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:?neither RUNNER_TOOL_CACHE nor RUNNER_TEMP is set}}/lakerun"
tool="$root/deno-$version-${RUNNER_OS:-os}-${RUNNER_ARCH:-arch}"
exe="deno"
[[ "${RUNNER_OS:-}" == "Windows" ]] && exe="deno.exe"

lock_hash() {
  if command -v sha256sum >/dev/null; then sha256sum "$action/deno.lock" | cut -c1-16
  else shasum -a 256 "$action/deno.lock" | cut -c1-16; fi
}

case "${1:-}" in
  locate)
    {
      echo "deno=$tool/bin/$exe"
      echo "tool-dir=$tool/bin"
      echo "deno-dir=$tool/deno-dir"
      echo "key=lakerun-deno-${RUNNER_OS:-os}-${RUNNER_ARCH:-arch}-$version-$(lock_hash)"
    } >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
    ;;
  install)
    export DENO_DIR="$tool/deno-dir"
    if [[ ! -x "$tool/bin/$exe" ]] || [[ "$("$tool/bin/$exe" --version | head -n1)" != "deno $version "* ]]; then
      echo "::group::Installing Deno $version from npm"
      work="${RUNNER_TEMP:?RUNNER_TEMP is not set}/lakerun-npm-$$"
      rm -rf "$work"
      mkdir -p "$work" "$tool/bin"
      npm install --prefix "$work" --no-save --no-package-lock --no-audit --no-fund "deno@$version"
      # the package's launcher finds the native binary of this platform; copy that binary alone
      binary="$(node "$work/node_modules/deno/bin.cjs" eval --quiet 'console.log(Deno.execPath())')"
      cp "$binary" "$tool/bin/$exe"
      chmod +x "$tool/bin/$exe"
      rm -rf "$work"
      echo "::endgroup::"
    fi
    "$tool/bin/$exe" --version | head -n1
    echo "::group::Caching lakerun's npm dependencies in DENO_DIR"
    "$tool/bin/$exe" cache --frozen-lockfile --config "$action/deno.json" "$action/main.ts"
    echo "::endgroup::"
    ;;
  *)
    echo "usage: deno.sh locate|install" >&2
    exit 2
    ;;
esac
