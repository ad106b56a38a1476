#!/usr/bin/env bash
# One knowledge base holding every development set of ../shared/eval plus distractors (Debian's
# python3.11-doc, postgresql-doc-15 and debian-reference-zh-cn manuals, when installed), for
# bench/retrieval_bench.py. Incremental: an interrupted build resumes where it stopped.
#   bench/build_eval_kb.sh [KB_HOME]      (default bench/work/eval-all)
set -euo pipefail
cd "$(dirname "$0")/.."
HOME_DIR="${1:-bench/work/eval-all}"
EVAL=../shared/eval
if [ ! -d "$EVAL" ]; then echo "skipped: $EVAL not found"; exit 0; fi
folders=()
for set in xquad_en xquad_zh dragonball_en cmrc2018 domainrag rgb_zh drcd_zhhans financebench; do
    folders+=("$EVAL/$set/docs")
done
for manual in /usr/share/doc/python3.11/html /usr/share/doc/postgresql-doc-15/html /usr/share/debian-reference; do
    [ -d "$manual" ] && folders+=("$manual")
done
# Exit code 1 means some file failed; the summary names it and the rest is indexed.
KB_HOME="$HOME_DIR" .venv/bin/kb ingest "${folders[@]}" --json || true
