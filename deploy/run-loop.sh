#!/bin/bash
# The offline actor-critic loop in the MuJoCo Lift cell (docs/loop.md):
# collect behaviour data with the scripted operator through pacd, export it,
# train BC, filtered BC, BC+Q, PAC (actor and critic together, from the BC
# actor, within its support) and two-stage PAC (pac-2stage: the critic first,
# then the actor), evaluate each in pacd over the same seeds, let PAC collect
# its own episodes, retrain, evaluate again, and print the table
# (out/loop/results.md).
#   usage: deploy/run-loop.sh [--smoke] [--variant lowdim|camera] [--out DIR]
#          [BUILD_DIR=build in $BUILD]; --help lists the options
#   (run deploy/install-deps.sh first, as root; ../shared beside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
exec /usr/bin/python3 clients/pacd_lift_loop.py --build "$BUILD" "$@"
