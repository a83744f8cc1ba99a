#!/usr/bin/env bash
# The action's run step (see action.yml): `lakerun run` with the action's inputs, which arrive as environment
# variables and are passed on as separate arguments, never as script text:
#   LAKERUN_ROUTINE    the routine file (required)
#   LAKERUN_EXECUTORS  plugin folders, one per line
#   LAKERUN_DATE       the run's logical date (YYYY-MM-DD)
#   LAKERUN_RESUME     "true" (the last failed or interrupted run), a run id, or "" / "false"
#   LAKERUN_ARGS       more arguments, split into words as a shell would (quotes and backslashes), without
#                      any expansion: no variables, no globs, no command substitution
#   LAKERUN_DENO       the Deno binary (default: deno on PATH)
# lakerun is started with exec, so that the runner's SIGINT and SIGTERM on cancel reach it, not this shell.
set -euo pipefail

# A refused input: an error annotation (the message escaped as workflow commands require), status invalid
# (as lakerun gives for a refused command line), exit 2.
refuse() {
  local message="$1"
  message="${message//'%'/'%25'}"
  message="${message//$'\r'/'%0D'}"
  message="${message//$'\n'/'%0A'}"
  echo "::error title=lakerun::$message"
  [[ -n "${GITHUB_OUTPUT:-}" ]] && echo "status=invalid" >> "$GITHUB_OUTPUT"
  exit 2
}

routine="${LAKERUN_ROUTINE:-}"
[[ -z "$routine" ]] && refuse "the action's 'routine' input is required"
action="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"

args=(run)
while IFS= read -r dir || [[ -n "$dir" ]]; do
  dir="${dir%$'\r'}"
  # --option=value: a value starting with "-" is a value, not an option
  [[ -n "${dir//[[:space:]]/}" ]] && args+=("--executors=$dir")
done <<< "${LAKERUN_EXECUTORS:-}"
[[ -n "${LAKERUN_DATE:-}" ]] && args+=("--date=$LAKERUN_DATE")
case "${LAKERUN_RESUME:-}" in
  "" | false) ;;
  true) args+=(--resume) ;;
  *) args+=("--resume=$LAKERUN_RESUME") ;;
esac
extra="${LAKERUN_ARGS:-}"
if [[ -n "${extra//[[:space:]]/}" ]]; then
  words="$(mktemp)"
  # xargs splits on blanks and honours quotes and backslashes; it expands nothing
  if ! printf '%s' "$extra" | xargs printf '%s\0' > "$words" 2> "$words.err"; then
    why="$(head -n 1 "$words.err")"
    rm -f "$words" "$words.err"
    why="${why#xargs: }"
    refuse "the action's 'args' input cannot be split into arguments (${why%%;*}): $extra"
  fi
  rm -f "$words.err"
  while IFS= read -r -d '' word; do args+=("$word"); done < "$words"
  rm -f "$words"
fi
args+=(-- "$routine")

exec "${LAKERUN_DENO:-deno}" run -A --frozen-lockfile --v8-flags=--max-semi-space-size=1 \
  --config "$action/deno.json" "$action/main.ts" "${args[@]}"
