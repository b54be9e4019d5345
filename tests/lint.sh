#!/bin/sh
# make lint: the static checks of make test on their own (tests/static.sh).
exec sh "$(dirname "$0")/static.sh" "$@"
