/**
 * Keeps one CPU from going idle while the agent suite's prober waits on it. A virtual CPU with
 * nothing to run halts, and waking it again goes through the hypervisor: on the Firecracker VMs
 * of docs/benchmarks.md a sleeping process then answers a loopback request in ~1.5 ms at p50
 * instead of ~0.6 ms, whoever serves it. Run under `chrt --idle 0` (SCHED_IDLE), it takes only
 * time nobody else wants: any waking task, the prober included, preempts it at once.
 * Stops by itself after MAX_MS, or as soon as PARENT_PID (the process that started it; given,
 * since it may be gone before this one reads its parent) is no longer its parent.
 * Usage: chrt --idle 0 node idle-spinner.js MAX_MS PARENT_PID
 */
const maxMs = Number(process.argv[2] ?? '60000')
const parent = Number(process.argv[3] ?? process.ppid)
const end = Date.now() + maxMs
let spins = 0
while (Date.now() < end) {
  // The parent check is a system call: once in a while is enough.
  if (++spins % 100_000 === 0 && process.ppid !== parent) break
}
