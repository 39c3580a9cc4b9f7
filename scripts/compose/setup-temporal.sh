#!/bin/sh
# docker-compose.yml's temporal-setup job (temporalio/admin-tools): waits for the server, creates the namespace if
# it is missing, and the search attributes LaunchGlidein and GlideinFleet set (Keyword), those missing only. Safe to
# run again. Env: TEMPORAL_ADDRESS, NAMESPACE, NAMESPACE_RETENTION, SEARCH_ATTRIBUTES (names, space-separated).
set -eu
: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"
export TEMPORAL_ADDRESS

attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge 60 ]; then echo "the Temporal server at $TEMPORAL_ADDRESS is not healthy" >&2; exit 1; fi
  attempt=$((attempt + 1))
  sleep 5
done

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "${NAMESPACE_RETENTION:-7d}"
  echo "namespace $NAMESPACE created"
fi

# A new namespace takes a moment to be usable everywhere: retry the listing.
attempt=1
until existing=$(temporal operator search-attribute list --namespace "$NAMESPACE" 2>/dev/null); do
  if [ "$attempt" -ge 30 ]; then echo "cannot list the search attributes of $NAMESPACE" >&2; exit 1; fi
  attempt=$((attempt + 1))
  sleep 2
done
for name in $SEARCH_ATTRIBUTES; do
  if printf '%s\n' "$existing" | grep -qw -- "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type Keyword
    echo "search attribute $name created"
  fi
done
