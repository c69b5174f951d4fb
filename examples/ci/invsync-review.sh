#!/bin/sh
# Review a pull request's rule change with invsync, in any CI: validate the manifests, diff them
# against the base branch over live or snapshot data, write the markdown and (optionally) post it.
# Needs git history of the base ref in the checkout (e.g. `git fetch origin main`) and invsync.
#
#   BASE_REF   git ref of the base (default origin/main)
#   MANIFESTS  the manifests directory or file, relative to the repository (default manifests/)
#   NAMESPACE  set: read stock and listings live from this namespace (KUBECONFIG must allow it)
#   INVENTORY, LISTINGS   otherwise: snapshot files (default snapshots/inventory.json, listings.json)
#   OUT        where the markdown goes (default invsync-diff.md)
#   POST_CMD   set: run as `$POST_CMD OUT`, e.g. 'gh pr comment 42 --body-file'
#   INVSYNC    the invsync command (default invsync)
#
# Exit: 0 reviewed (changes or not; the markdown says which), 2 invalid manifests or bad input.
set -eu

BASE_REF=${BASE_REF:-origin/main}
MANIFESTS=${MANIFESTS:-manifests/}
OUT=${OUT:-invsync-diff.md}
INVSYNC=${INVSYNC:-invsync}

"$INVSYNC" validate -f "$MANIFESTS" || exit 2

if [ -n "${NAMESPACE:-}" ]; then
    set -- --live -n "$NAMESPACE"
else
    set -- --inventory "${INVENTORY:-snapshots/inventory.json}" --listings "${LISTINGS:-snapshots/listings.json}"
fi

status=0
"$INVSYNC" diff --base-ref "$BASE_REF" --head "$MANIFESTS" "$@" -o markdown >"$OUT" || status=$?
if [ "$status" -ge 2 ]; then
    rm -f "$OUT"
    exit 2
fi
cat "$OUT"

if [ -n "${POST_CMD:-}" ]; then
    # POST_CMD is the CI's own setting: split into words on purpose
    # shellcheck disable=SC2086
    $POST_CMD "$OUT"
fi
