#!/bin/sh
# Fault test of distributed/: a 2-rank job in which rank 1 calls beit_dist_abort ("abort"), is
# killed by SIGKILL ("kill"), or joins the gradient allreduce and stops with SIGSTOP ("stop";
# rank 0 has a 2 s deadline) while rank 0 waits in it must end with a non-zero exit within 30
# seconds, leaving no rank behind (a stopped one included); with abort, stderr carries
# "rank 1: <message>", with stop rank 0's message naming rank 1 with its host and pid.
#   mpi_fault.sh MPIEXEC TEST_MPI abort|kill|stop
set -u
[ $# -eq 3 ] || { echo "usage: mpi_fault.sh MPIEXEC TEST_MPI abort|kill|stop" >&2; exit 2; }
mpiexec=$1 bin=$2 mode=$3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s%N)
# the outer timeout only turns a hang into a failure; the limit under test is 30 s
timeout -k 5 90 "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$bin" --fault "$mode" \
  >"$log" 2>&1
rc=$?
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
cat "$log"
echo "mpi_fault $mode: exit status $rc after $ms ms"
fail=0
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0"; fail=1; fi
# (mpirun itself exits 137 when a rank died of SIGKILL: only timeout's own 124 means a hang)
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung (timeout)"; fail=1; fi
if [ "$ms" -ge 30000 ]; then echo "FAIL: took $ms ms (limit 30000)"; fail=1; fi
if [ "$mode" = abort ] && ! grep -q "rank 1: simulated failure in step 1" "$log"; then
  echo "FAIL: no 'rank 1: simulated failure in step 1' on stderr"; fail=1
fi
pattern='rank 0: the gradient allreduce of step 17 (collective #[0-9]*) has waited 2\.[0-9] s for rank 1 (host [^,]*, pid [0-9]*), which does not answer: aborting (--dist-timeout 2)'
if [ "$mode" = stop ] && ! grep -q "$pattern" "$log"; then
  echo "FAIL: no message naming the stopped rank 1 ('$pattern')"; fail=1
fi
if [ "$mode" = stop ] && grep -q "a call after the deadline" "$log"; then
  echo "FAIL: a call after the deadline waited or said something else"; fail=1
fi
sleep 1
if ps -eo args | grep -F -- "$bin --fault $mode" | grep -v -e grep -e mpi_fault.sh -e "$mpiexec" \
   >/dev/null; then
  echo "FAIL: ranks left running:"; ps -eo pid,args | grep -F -- "$bin --fault $mode"; fail=1
fi
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
