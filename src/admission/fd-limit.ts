import fs from 'node:fs'

/**
 * What the kernel lets this process hold in file descriptors. Read from /proc (Linux); every
 * function answers `undefined` where /proc is not there, and the node then sets no bound of
 * its own from it.
 */

/** The soft RLIMIT_NOFILE from the text of /proc/self/limits ("Max open files  1024  4096  files"). */
export function parseFdLimit (limitsText: string): number | undefined {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  if (soft === undefined) return undefined
  if (soft === 'unlimited') return Number.POSITIVE_INFINITY
  const n = Number(soft)
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/**
 * The soft limit now. Read again each time: `prlimit --pid` changes it under a running
 * process. (Node raises the soft limit to the hard one when it starts.)
 */
export function readFdLimit (): number | undefined {
  try {
    return parseFdLimit(fs.readFileSync('/proc/self/limits', 'utf8'))
  } catch {
    return undefined
  }
}

/** Descriptors open now (the directory's own, opened to list it, not counted). */
export function countOpenFds (): number | undefined {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1
  } catch {
    return undefined
  }
}

/**
 * Whether this process can open one more descriptor: the condition accept() needs. When it
 * cannot (EMFILE: this process's limit; ENFILE: the system's), libuv accepts and closes the
 * waiting connections itself ("the EMFILE trick", using a descriptor it keeps in reserve) and
 * tells Node nothing, so this probe is how a worker learns of it.
 */
export function probeFd (): 'ok' | 'EMFILE' | 'ENFILE' {
  let fd: number
  try {
    fd = fs.openSync('/dev/null', 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'EMFILE' || code === 'ENFILE' ? code : 'ok'
  }
  fs.closeSync(fd)
  return 'ok'
}
