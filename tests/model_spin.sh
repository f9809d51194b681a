#!/usr/bin/env bash
# The Promela model of the lock-free core (model/labyrinth.pml), checked
# exhaustively with spin: docs/reliability.md, "The model".  $1 = build dir.
exec bash "${2:-$(dirname "$0")/..}/model/check.sh" "$1/model-spin"
