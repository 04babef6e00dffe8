#!/bin/sh
# Install what pacd needs to build, test and benchmark on Debian 12 (run as root).
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential meson ninja-build pkg-config \
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler \
  libopenblas-dev libblis-dev libsystemd-dev libjansson-dev libinih-dev libcmocka-dev \
  libturbojpeg0-dev libswscale-dev libssl-dev zlib1g-dev rt-tests stress-ng python3-pil \
  libwebsockets-dev libprotobuf-dev \
  libmujoco-dev libmujoco-samples libhdf5-dev libegl-dev libgl1-mesa-dri libegl-mesa0 python3-h5py \
  python3 python3-torch python3-numpy python3-zmq python3-protobuf python3-pytest \
  python3-matplotlib python3-tqdm python3-seccomp python3-pytest-timeout clang libclang-rt-14-dev \
  g++ libroscpp-dev libstd-msgs-dev libsensor-msgs-dev libgeometry-msgs-dev python3-gencpp \
  python3-genmsg python3-genpy python3-rospy python3-rosmaster python3-std-msgs \
  python3-sensor-msgs python3-geometry-msgs ros-std-msgs ros-geometry-msgs ros-sensor-msgs >/dev/null
# Node.js runs the independent MCAP reader in the tests; keep a node that is there
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# the independent MCAP reader and the Foxglove viewer used by the tests (@mcap/core,
# protobufjs, @foxglove/ws-protocol, ws)
if [ -f tests/integration/package.json ]; then
  npm ci --prefix tests/integration --no-audit --no-fund --ignore-scripts >/dev/null
fi
