#!/usr/bin/env bash
# The main job, on a throwaway catalog: import a small generated dataset, publish two
# versions, show them, and (where FUSE works) mount the latest one and read it back.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work="$(mktemp -d /tmp/dlfs-demo.XXXXXX)"
export DLFS_HOME="$work/home"
mnt="$work/mnt"
cleanup() {
  if grep -qs " $mnt " /proc/mounts; then dlfs umount "$mnt" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

python - "$work/photos" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for split, n in (("train", 24), ("val", 8)):
    for i in range(n):
        label = "cat" if i % 2 == 0 else "dog"
        path = os.path.join(root, split, label, f"{label}-{i:03d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.randint(2_000, 40_000)))
PY

say dlfs init
say dlfs dataset create pets --description "generated cats and dogs" --tag demo
say dlfs add pets "$work/photos"
say dlfs meta pets train/cat/cat-000.jpg --set 'split="train"' --set 'quality=0.9'
say dlfs publish pets --tag first
say dlfs version create pets --from pets@v0 --name cleanup
say dlfs rm pets -r val
say dlfs mv pets train/dog train/dogs
say dlfs publish pets
say dlfs version list pets
say dlfs ls pets@v0
say dlfs ls pets@latest train -l
say dlfs log pets
say dlfs dataset show pets
if [ -e /dev/fuse ] && dlfs mount --help >/dev/null 2>&1; then
  mkdir -p "$mnt"
  say dlfs mount pets@latest "$mnt"
  say ls "$mnt/train"
  say du -sh "$mnt"
  if command -v getfattr >/dev/null; then say getfattr -d -m user.dlfs "$mnt/train/cat/cat-000.jpg"; fi
  say dlfs mounts
  say dlfs umount "$mnt"
fi
echo
echo "demo ok (catalog was $DLFS_HOME, removed on exit)"
