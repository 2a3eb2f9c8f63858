#!/usr/bin/env bash
# Compile and test the Android `core` module without Gradle or the Android SDK, as `make kotlin-test` does in CI:
#   1. the Kotlin compiler pinned in tools/package-lock.json (npm `kotlin-compiler`), installed on first use;
#   2. JUnit 4, Hamcrest and Gson from Debian (`junit4`, `libhamcrest-java`, `libgoogle-gson-java`), installed with
#      apt-get when their jars are missing (needs root, as in CI);
#   3. fresh golden vectors from `pocketbert goldens` (uncased vocab of the default model + a trained cased vocab);
#   4. kotlinc core + tests, then JUnitCore; the last line is `N passed, N failed`; exit 1 on any failure.
# Env: PYTHON (default .venv/bin/python of the repo, else python3), BUILD (default apps_sample/android/build/core-test).
set -euo pipefail

ANDROID_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$ANDROID_DIR/../.." && pwd)"
BUILD="${BUILD:-$ANDROID_DIR/build/core-test}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
JAVA_LIB=/usr/share/java
JARS=("$JAVA_LIB/junit4.jar" "$JAVA_LIB/hamcrest-core.jar" "$JAVA_LIB/gson.jar")

step() { echo "== $*" >&2; }

# 1. Kotlin compiler
KOTLINC="$ANDROID_DIR/tools/node_modules/kotlin-compiler/bin/kotlinc"
if [[ ! -x "$KOTLINC" ]]; then
  command -v npm >/dev/null || { echo "npm is missing: install Node.js (apt-get install nodejs npm)" >&2; exit 2; }
  step "installing the pinned kotlin-compiler from npm"
  (cd "$ANDROID_DIR/tools" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 2. JUnit 4, Hamcrest, Gson
missing=()
for jar in "${JARS[@]}"; do [[ -f "$jar" ]] || missing+=("$jar"); done
if (( ${#missing[@]} )); then
  [[ $(id -u) -eq 0 ]] || { echo "missing ${missing[*]}: run as root or apt-get install junit4 libhamcrest-java libgoogle-gson-java" >&2; exit 2; }
  step "installing junit4 libhamcrest-java libgoogle-gson-java with apt-get"
  apt-get install -y -qq junit4 libhamcrest-java libgoogle-gson-java >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq junit4 libhamcrest-java libgoogle-gson-java >/dev/null; }
fi
CLASSPATH_LIBS="$(IFS=:; echo "${JARS[*]}")"

# 3. Goldens, fresh every run
rm -rf "$BUILD"
mkdir -p "$BUILD"
step "writing golden vectors with $PYTHON"
(cd "$REPO" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 \
  "$PYTHON" -m pocketbert goldens --cased-test-vocab -o "$BUILD/goldens" >/dev/null)

# 4. Compile and run
step "compiling core and its tests with $("$KOTLINC" -version 2>&1 | tail -1)"
start=$(date +%s)
CORE="$ANDROID_DIR/core/src"
"$KOTLINC" -nowarn -jvm-target 17 -cp "$CLASSPATH_LIBS" -d "$BUILD/classes" \
  $(find "$CORE/main/kotlin" "$CORE/test/kotlin" -name '*.kt' | sort) 2>&1 | grep -v '^warning: unable to find kotlin-stdlib' >&2 || true
[[ -d "$BUILD/classes/dev" ]] || { echo "compilation failed" >&2; echo "0 passed, 1 failed"; exit 1; }
step "compiled in $(( $(date +%s) - start ))s; running JUnit"
STDLIB="$ANDROID_DIR/tools/node_modules/kotlin-compiler/lib/kotlin-stdlib.jar"
TESTS=$(cd "$BUILD/classes" && find . -name '*Test.class' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
set +e
java -Dpocketbert.goldens="$BUILD/goldens" -cp "$BUILD/classes:$CORE/test/resources:$CLASSPATH_LIBS:$STDLIB" \
  org.junit.runner.JUnitCore $TESTS | tee "$BUILD/junit.log"
status=${PIPESTATUS[0]}
set -e
run=$(grep -oE '^(OK \(([0-9]+) tests?\)|Tests run: [0-9]+)' "$BUILD/junit.log" | grep -oE '[0-9]+' | head -1)
failed=$(grep -oE 'Failures: [0-9]+' "$BUILD/junit.log" | grep -oE '[0-9]+' || echo 0)
run=${run:-0}
if (( status != 0 && failed == 0 )); then failed=1; fi   # JUnit itself failed to start
echo "$(( run > failed ? run - failed : 0 )) passed, $failed failed"
exit $(( status != 0 ))
