#!/usr/bin/env bash
# `make loc`: lines of C++ per folder (its own .cpp and .hpp files, not those of its subfolders)
# against the budgets in tools/loc_budgets.txt, and no function longer than 100 lines (universal-ctags
# finds them, kernel templates included; tests are exempt: a TEST_CASE is a list of checks); exits
# 1 naming every folder over its budget and every function over the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
printf '%-16s %7s %7s\n' folder lines budget
while read -r folder budget; do
  [[ -z "$folder" || "$folder" == \#* ]] && continue
  lines=$(find "$folder" -maxdepth 1 -type f \( -name '*.cpp' -o -name '*.hpp' \) -exec cat {} + | wc -l)
  mark=""
  if (( lines > budget )); then mark="  over by $((lines - budget))"; status=1; fi
  printf '%-16s %7d %7d%s\n' "$folder" "$lines" "$budget" "$mark"
done < tools/loc_budgets.txt

command -v ctags > /dev/null || { echo "make loc: ctags missing (Debian package universal-ctags; make deps)"; exit 1; }
long=$(git ls-files '*.cpp' '*.hpp' | grep -v '^tests/' |
  xargs ctags --kinds-c++=f --fields=+ne -o - 2> /dev/null |
  awk -F'\t' '{ line = ""; end = ""
                for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) line = substr($i, 6); if ($i ~ /^end:/) end = substr($i, 5) }
                if (end != "" && end - line + 1 > 100) printf "%s:%s %s: %d lines\n", $2, line, $1, end - line + 1 }')
if [[ -n "$long" ]]; then
  echo "functions over 100 lines:"
  echo "$long"
  status=1
fi
exit $status
