#!/usr/bin/env bash
# Packages for a GPU machine without internet that already has Python 3.12,
# PyTorch, NumPy, SciPy, TensorBoard and Matplotlib (a cluster's compute
# node, a CUDA container image): the pinned versions of what dreamer.bench
# and train.py need beyond those, as wheels in one folder to copy there.
#
#   bash scripts/offline_wheels.sh [DIR]        # default .offline/whl
#
# There, before running anything:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
#   export PYTHONPATH=/tmp/site MUJOCO_GL=egl
#
# dm-control's locomotion, dog and test assets (60 MB) are dropped from its
# wheel so the folder stays near 31 MB; every suite task except dog's runs
# from what is left. Video summaries need moviepy, which is left out (training
# warns and writes the scalars). MuJoCo renders through EGL there: a machine
# without libEGL and libOpenGL needs them from its system's packages.
set -euo pipefail

DIR=${1:-.offline/whl}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DIR"

version() {  # the version pyproject.toml pins, so the wheels are those the tests ran against
  sed -n "s/^ *\"$1==\([^\"]*\)\".*/\1/p" "$(dirname "$0")/../pyproject.toml"
}
PINNED=(hydra-core=="$(version hydra-core)" mujoco=="$(version mujoco)" dm-control=="$(version dm-control)")
# Their own needs that such an image lacks (hydra-core: omegaconf, antlr4; dm-control: dm-env, dm-tree, PyOpenGL, glfw).
NEEDS=(omegaconf==2.3.1 dm-env==1.6 dm-tree==0.1.10 pyopengl==3.1.10 glfw==2.11.0)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  PLATFORMS+=(--platform "$tag")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$WORK" "${PINNED[@]}" "${NEEDS[@]}"
# antlr4's runtime 4.9.3 (the one omegaconf 2.3 needs) ships as source only; its wheel is pure Python.
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK" antlr4-python3-runtime==4.9.3

control=$(ls "$WORK"/dm_control-*.whl)
"$PYTHON" - "$control" <<'EOF'
import sys, zipfile
path = sys.argv[1]
dropped = ("dm_control/locomotion/soccer/", "dm_control/locomotion/walkers/assets/", "dm_control/locomotion/arenas/",
           "dm_control/suite/dog_assets/", "dm_control/mujoco/testing/", "dm_control/mjcf/test_assets/",
           "dm_control/blender/", "dm_control/suite/all_domains.png")
with zipfile.ZipFile(path) as whole:
    kept = [(i, whole.read(i)) for i in whole.infolist() if not i.filename.startswith(dropped)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as pruned:
    for info, data in kept:
        pruned.writestr(info, data)
EOF
mv "$WORK"/*.whl "$DIR"/
du -sh "$DIR"
ls "$DIR"
