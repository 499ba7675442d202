#!/usr/bin/env bash
# `make loc`: lines of C++ per folder (its own .cpp and .hpp files, not those of its subfolders)
# against the budgets in tools/loc_budgets.txt; exits 1 naming every folder over its budget.
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
exit $status
