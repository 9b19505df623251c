#!/bin/sh
# The image check's hook (deploy/image/check.sh writes it into a COPY of the image with debugfs; it is
# never part of the image): once first boot is done, it echoes to the serial console, one line each
# marked EMOEDGE-CHECK, the first-boot unit's result and journal, the emoedge unit's state and
# sandboxing (systemctl show), its process's user, the failed units, the clock and this boot's records
# in the summaries database, then powers the machine off.   WAIT_S: how long to wait for records.
M=EMOEDGE-CHECK
WAIT_S=${WAIT_S:-900}
UNIT=emoedge-sensor.service
DB=/data/emoedge/summaries.sqlite
PY=/opt/emoedge/venv/bin/python
say() { echo "$M $*"; }
state() { systemctl show -p ActiveState --value "$1"; }
BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
say "boot boot_id=$BOOT_ID uptime_s=$(cut -d' ' -f1 /proc/uptime)"
n=0
while [ "$(state emoedge-firstboot.service)" = activating ] && [ $n -lt 600 ]; do sleep 2; n=$((n + 2)); done
say "firstboot active_state=$(state emoedge-firstboot.service) result=$(systemctl show -p Result --value emoedge-firstboot.service) exit_status=$(systemctl show -p ExecMainStatus --value emoedge-firstboot.service)"
journalctl -b -u emoedge-firstboot.service -o cat --no-pager | sed "s/^/$M firstboot-journal: /"
say "sensor enabled=$(systemctl is-enabled $UNIT 2>&1) active=$(systemctl is-active $UNIT 2>&1)"
records() {  # this boot's intervals
  [ -f "$DB" ] || return 0
  $PY - "$DB" "$BOOT_ID" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("SELECT i.start_unix_ns, i.end_unix_ns, i.frames, i.face_observations, r.boot_id, r.started_unix_ns "
                  "FROM intervals i JOIN runs r ON r.run_id = i.run_id WHERE r.boot_id = ? ORDER BY i.id",
                  (sys.argv[2],)).fetchall()
for r in rows:
    print("interval start_unix_ns=%d end_unix_ns=%d frames=%d face_observations=%d boot_id=%s run_started_unix_ns=%d" % r)
PYEOF
}
if systemctl is-enabled -q $UNIT 2>/dev/null; then
  n=0; pid=0; seen=""
  while [ $n -lt "$WAIT_S" ]; do
    p=$(systemctl show -p MainPID --value $UNIT)
    if [ "${p:-0}" != 0 ] && [ -z "$seen" ]; then
      pid=$p
      seen="user=$(ps -o user= -p "$pid") pid=$pid $(grep -E '^(NoNewPrivs|Seccomp):' /proc/"$pid"/status | tr '\t\n' '  ')"
      say "sensor process $seen"
      say "sensor process-cmdline $(tr '\0' ' ' < /proc/"$pid"/cmdline)"
      say "sensor process-root-mount $(awk '$2=="/" {print $4}' /proc/"$pid"/mounts | tail -1 | cut -d, -f1)"
      say "sensor process-data-mount $(awk '$2=="/data/emoedge" {print $4}' /proc/"$pid"/mounts | tail -1 | cut -d, -f1)"
    fi
    if [ -n "$seen" ] && [ "$(records | grep -c '^interval')" -ge 2 ]; then break; fi
    sleep 5; n=$((n + 5))
  done
  [ -n "$seen" ] || say "sensor process never seen in ${WAIT_S} s"
  systemctl show $UNIT -p Id -p ActiveState -p SubState -p User -p UnitFileState -p ProtectSystem -p ProtectHome \
    -p PrivateTmp -p NoNewPrivileges -p IPAddressDeny -p ReadWritePaths -p NRestarts -p Environment -p Restart \
    -p WatchdogUSec | sed "s/^/$M sensor-show: /"
  journalctl -b -u $UNIT -o cat --no-pager | tail -n 25 | sed "s/^/$M sensor-journal: /"
  records | sed "s/^/$M /"
fi
for u in $(systemctl list-units --failed --plain --no-legend | awk '{print $1}'); do say "failed-unit $u"; done
say "failed-units $(systemctl list-units --failed --plain --no-legend | wc -l)"
say "clock unix_s=$(date -u +%s) utc=$(date -u +%FT%TZ)"
say "done"
sleep 1
systemctl poweroff
