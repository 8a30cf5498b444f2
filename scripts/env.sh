# Source me: the environment every project command runs in (project-local Airflow on SQLite).
# Usage: source scripts/env.sh [demo|test|bench]
#
# AIRFLOW_HOME is the project's private home of the mode (.run/airflow-<mode>),
# whatever AIRFLOW_HOME the shell had, exported or not: the demo resets its data and the tests
# write runs, so neither may land in your own Airflow. To choose a home on purpose, set
# RETENTION_AIRFLOW_HOME. The line on stderr says which home is used and why.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_mode="${1:-demo}"
if [[ ! $_mode =~ ^[a-z]+$ ]]; then  # demo, test, bench: names a directory under .run/
  echo "[env] bad mode '$_mode': use demo or test" >&2; unset _root _mode; return 2
fi
if [[ -n "${RETENTION_AIRFLOW_HOME:-}" ]]; then
  _home="$RETENTION_AIRFLOW_HOME"
  [[ $_home == /* ]] || _home="$PWD/$_home"
  _why="from RETENTION_AIRFLOW_HOME"
else
  _home="$_root/.run/airflow-$_mode"
  _why="the project's $_mode home"
  if [[ -n "${AIRFLOW_HOME:-}" && "$AIRFLOW_HOME" != "$_home" ]]; then
    _why+="; AIRFLOW_HOME=$AIRFLOW_HOME from your shell is not used; RETENTION_AIRFLOW_HOME chooses a home"
  fi
fi
export AIRFLOW_HOME="$_home"
echo "[env] AIRFLOW_HOME=$AIRFLOW_HOME ($_why)" >&2
export PATH="$_root/.venv/bin:$PATH"
export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW__CORE__DAGS_FOLDER="$_root/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$_root/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
unset _root _mode _home _why
