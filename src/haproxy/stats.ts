/**
 * Parsers for the HAProxy Runtime API's `show stat` (CSV) and `show servers state` outputs.
 * Columns are looked up by the names in the header line, never by position: the column set
 * grows between HAProxy versions.
 */

/** One `show stat` row. Empty CSV cells become `undefined`. `fields` holds every column. */
export interface StatRow {
  pxname: string
  svname: string
  /** `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, `OPEN`, `UP 1/3`, `DOWN (agent)`, ... */
  status: string
  weight: number | undefined
  /** User-set weight (2.4+), `weight` is the effective one. */
  uweight: number | undefined
  scur: number | undefined
  stot: number | undefined
  /** 0 frontend, 1 backend, 2 server, 3 listener. */
  type: number | undefined
  iid: number | undefined
  sid: number | undefined
  act: number | undefined
  bck: number | undefined
  lastchg: number | undefined
  /** `L4OK`, `L7STS`, ...: without the `* ` HAProxy puts in front while a check is under way (see `check_running`). */
  check_status: string | undefined
  /** A health check was in flight when HAProxy answered (its `check_status` began with `* `). */
  check_running: boolean
  check_desc: string | undefined
  /** As `check_status`, for the agent check. */
  agent_status: string | undefined
  agent_running: boolean
  agent_desc: string | undefined
  /** Last check's info text. */
  last_chk: string | undefined
  /** Last agent reply info, e.g. `via agent : down (no workers)`: where the agent's `#reason` shows. */
  last_agt: string | undefined
  addr: string | undefined
  fields: Record<string, string>
}

/** Parse one CSV line; HAProxy quotes cells holding commas or quotes (`csv_enc`). */
export function parseCsvLine (line: string): string[] {
  const cells: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (quoted) {
      if (ch === '"') {
        if (line[i + 1] === '"') { cell += '"'; i++ } else quoted = false
      } else cell += ch
    } else if (ch === '"' && cell === '') quoted = true
    else if (ch === ',') { cells.push(cell); cell = '' } else cell += ch
  }
  cells.push(cell)
  return cells
}

function optionalNumber (text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  return Number.isFinite(value) ? value : undefined
}

function optionalString (text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text
}

/** HAProxy writes `* L7OK` while that check is running (stats.c, CHK_ST_INPROGRESS): the status is the rest. */
const RUNNING_MARK = '* '

function checkStatus (text: string | undefined): { status: string | undefined, running: boolean } {
  const running = text?.startsWith(RUNNING_MARK) === true
  return { status: optionalString(running ? text?.slice(RUNNING_MARK.length) : text), running }
}

/** Parse the output of `show stat` (CSV whose header line starts with `# `). */
export function parseShowStat (text: string): StatRow[] {
  const lines = text.split('\n')
  const headerIndex = lines.findIndex((line) => line.startsWith('# '))
  if (headerIndex < 0) throw new Error(`show stat: no "# pxname,..." header line in: ${JSON.stringify(text.slice(0, 120))}`)
  const header = parseCsvLine((lines[headerIndex] ?? '').slice(2))
  if (!header.includes('pxname') || !header.includes('svname')) throw new Error('show stat: header has no pxname/svname columns')
  const rows: StatRow[] = []
  for (const line of lines.slice(headerIndex + 1)) {
    if (line === '') continue
    const cells = parseCsvLine(line)
    const fields: Record<string, string> = {}
    header.forEach((name, i) => { if (name !== '' && name !== '-') fields[name] = cells[i] ?? '' })
    const check = checkStatus(fields.check_status)
    const agent = checkStatus(fields.agent_status)
    rows.push({
      pxname: fields.pxname ?? '',
      svname: fields.svname ?? '',
      status: fields.status ?? '',
      weight: optionalNumber(fields.weight),
      uweight: optionalNumber(fields.uweight),
      scur: optionalNumber(fields.scur),
      stot: optionalNumber(fields.stot),
      type: optionalNumber(fields.type),
      iid: optionalNumber(fields.iid),
      sid: optionalNumber(fields.sid),
      act: optionalNumber(fields.act),
      bck: optionalNumber(fields.bck),
      lastchg: optionalNumber(fields.lastchg),
      check_status: check.status,
      check_running: check.running,
      check_desc: optionalString(fields.check_desc),
      agent_status: agent.status,
      agent_running: agent.running,
      agent_desc: optionalString(fields.agent_desc),
      last_chk: optionalString(fields.last_chk),
      last_agt: optionalString(fields.last_agt),
      addr: optionalString(fields.addr),
      fields
    })
  }
  return rows
}

/** `srv_op_state` values (`enum srv_state`). */
export const SERVER_OP_STATES = ['STOPPED', 'STARTING', 'RUNNING', 'STOPPING'] as const
export type ServerOpState = typeof SERVER_OP_STATES[number] | 'UNKNOWN'

/** `srv_admin_state` bits (`enum srv_admin`). */
export const SERVER_ADMIN_FLAGS = {
  FMAINT: 0x01, // forced maintenance (CLI `state maint`, `disable server`, agent `maint`)
  IMAINT: 0x02, // inherited from a tracked server
  CMAINT: 0x04, // `disabled` in the configuration
  FDRAIN: 0x08, // forced drain (CLI `state drain`, agent `drain`)
  IDRAIN: 0x10, // inherited drain
  RMAINT: 0x20, // address not resolved (DNS)
  HMAINT: 0x40 // hostname changed by the CLI
} as const
export type ServerAdminFlag = keyof typeof SERVER_ADMIN_FLAGS

/** Decode `srv_admin_state` into its flag names. */
export function decodeAdminState (value: number): ServerAdminFlag[] {
  return (Object.keys(SERVER_ADMIN_FLAGS) as ServerAdminFlag[]).filter((flag) => (value & SERVER_ADMIN_FLAGS[flag]) !== 0)
}

/** One `show servers state` row. `-` cells become `undefined`. `fields` holds every column. */
export interface ServerStateRow {
  be_id: number
  be_name: string
  srv_id: number
  srv_name: string
  srv_addr: string | undefined
  srv_op_state: number
  op_state: ServerOpState
  srv_admin_state: number
  admin_flags: ServerAdminFlag[]
  /** Any of the MAINT bits. */
  maint: boolean
  /** Any of the DRAIN bits (and not in maintenance). */
  drain: boolean
  srv_uweight: number | undefined
  srv_iweight: number | undefined
  srv_port: number | undefined
  srv_agent_port: number | undefined
  fields: Record<string, string>
}

const MAINT_MASK = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
const DRAIN_MASK = 0x08 | 0x10

function requiredInt (fields: Record<string, string>, name: string, line: string): number {
  const text = fields[name]
  if (text === undefined || !/^-?\d+$/.test(text)) throw new Error(`show servers state: field ${name} is not an integer in line ${JSON.stringify(line)}`)
  return Number(text)
}

/** Parse the output of `show servers state [backend]` (format version 1). */
export function parseServersState (text: string): ServerStateRow[] {
  const lines = text.split('\n').filter((line) => line.trim() !== '')
  const version = lines[0]?.trim()
  if (version !== '1') throw new Error(`show servers state: expected format version 1, got ${JSON.stringify(lines[0] ?? text)}`)
  let header: string[] | undefined
  const rows: ServerStateRow[] = []
  for (const line of lines.slice(1)) {
    if (line.startsWith('#')) { header = line.slice(1).trim().split(/\s+/); continue }
    if (header === undefined) throw new Error('show servers state: data line before the "#" header')
    const cells = line.trim().split(/\s+/)
    const fields: Record<string, string> = {}
    header.forEach((name, i) => { fields[name] = cells[i] ?? '' })
    const opState = requiredInt(fields, 'srv_op_state', line)
    const adminState = requiredInt(fields, 'srv_admin_state', line)
    const dash = (name: string): string | undefined => (fields[name] === undefined || fields[name] === '-' ? undefined : fields[name])
    rows.push({
      be_id: requiredInt(fields, 'be_id', line),
      be_name: fields.be_name ?? '',
      srv_id: requiredInt(fields, 'srv_id', line),
      srv_name: fields.srv_name ?? '',
      srv_addr: dash('srv_addr'),
      srv_op_state: opState,
      op_state: SERVER_OP_STATES[opState] ?? 'UNKNOWN',
      srv_admin_state: adminState,
      admin_flags: decodeAdminState(adminState),
      maint: (adminState & MAINT_MASK) !== 0,
      drain: (adminState & MAINT_MASK) === 0 && (adminState & DRAIN_MASK) !== 0,
      srv_uweight: optionalNumber(dash('srv_uweight')),
      srv_iweight: optionalNumber(dash('srv_iweight')),
      srv_port: optionalNumber(dash('srv_port')),
      srv_agent_port: optionalNumber(dash('srv_agent_port')),
      fields
    })
  }
  return rows
}
