#!/usr/bin/env bash
# ansible-test needs the collection under ansible_collections/<namespace>/<name>/: copy the
# files git knows about (tracked, or untracked and not ignored) into a temporary tree and
# run sanity there, so the checkout itself never moves.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# ansible-test installs its own pinned linters: keep them out of the main venv.
sanity_venv="$repo/.cache/sanity-venv"
if [ ! -x "$sanity_venv/bin/ansible-test" ]; then
  python3 -m venv "$sanity_venv"
  "$sanity_venv/bin/pip" install -q "$(grep -E '^ansible-core==' "$repo/requirements-dev.txt")"
fi
venv_bin="$sanity_venv/bin"
pip_version=$(grep -oP "pip='\K[0-9.]+" "$sanity_venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/tests/offline_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/dictamesh/k3s_gitops"
mkdir -p "$dest"
cd "$repo"
# tests/schemas/charts holds upstream chart files kept byte for byte (test_chart_check.py compares
# them with shared/reference/charts): they are reference data, not collection code, and carry the
# upstream's Unicode quotes, so they stay out of the sanity tree.
git ls-files -z --cached --others --exclude-standard -- . ':!tests/schemas/charts' \
  | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
  | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
# A git repo lets ansible-test list exactly these files.
git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
py=$("$venv_bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
"$venv_bin/ansible-test" sanity --local --requirements --python "$py" "$@"
