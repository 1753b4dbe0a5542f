#!/bin/sh
# chrony's own view of the clock as Prometheus gauges: archive_dr_time_metrics.sh TEXTFILE_DIR
# The kernel's timex status says nothing where chrony may not set the clock (containers, VMs
# whose host keeps the time); chronyc tracking does. Field 14 of `chronyc -c tracking` is the
# leap status, field 5 the offset of the system time (s).
set -eu
dir=$1
tmp="$dir/.archive_dr_time.prom.$$"
tracking=$(chronyc -c tracking 2>/dev/null) || tracking=""
echo "$tracking" | awk -F, '{
  synced = ($14 == "Normal") ? 1 : 0
  print "# HELP archive_dr_time_synchronised 1 when chrony tracks a source with leap status Normal."
  print "# TYPE archive_dr_time_synchronised gauge"
  print "archive_dr_time_synchronised " synced
  if (synced) {
    print "# HELP archive_dr_time_offset_seconds chrony: offset of the system time from true time (s)."
    print "# TYPE archive_dr_time_offset_seconds gauge"
    print "archive_dr_time_offset_seconds " $5
  }
}' > "$tmp"
mv "$tmp" "$dir/archive_dr_time.prom"
