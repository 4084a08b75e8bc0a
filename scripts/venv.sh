# Sourced by scripts/start and scripts/test: make .venv and install the requirements
# (again only when a requirements file changed).
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
_reqs=(requirements.txt)
[ "${ZENZEFI_DEV_REQUIREMENTS:-0}" = 1 ] && _reqs+=(requirements-dev.txt)
_stamp=".venv/.requirements-$(cat "${_reqs[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$_stamp" ]; then
  _args=()
  for r in "${_reqs[@]}"; do _args+=(-r "$r"); done
  .venv/bin/python -m pip install -q "${_args[@]}"
  touch "$_stamp"
fi
