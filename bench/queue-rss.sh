#!/bin/bash
# rss.sh YAML: run it in queue mode with 2 embedded workers and report the peak RSS of
# the submitter and of each worker (sampled from /proc every 0.2 s), and the stream
# storage on disk at the end.
export PIPELINE_PLUGIN_PATH=/tmp/qb/plug
rm -rf mout qdir; mkdir qdir
/work/main/bin/pipeline run --progress none --queue embedded --workers 2 --queue-dir qdir "$1" 2> run.err &
sub=$!
peak_sub=0; declare -A peak
store=0
while kill -0 $sub 2>/dev/null; do
  r=$(awk '/VmRSS/{print $2}' /proc/$sub/status 2>/dev/null); [ -n "$r" ] && [ "$r" -gt "$peak_sub" ] && peak_sub=$r
  for w in $(pgrep -P $sub -f 'worker --queue'); do
    r=$(awk '/VmRSS/{print $2}' /proc/$w/status 2>/dev/null); [ -n "$r" ] && [ "$r" -gt "${peak[$w]:-0}" ] && peak[$w]=$r
  done
  s=$(du -sk qdir 2>/dev/null | cut -f1); [ -n "$s" ] && [ "$s" -gt "$store" ] && store=$s
  sleep 0.2
done
tail -1 run.err
echo "submitter peak RSS ${peak_sub} KB; workers: $(for w in "${!peak[@]}"; do echo -n "${peak[$w]} KB "; done); stream store peak $store KB"
