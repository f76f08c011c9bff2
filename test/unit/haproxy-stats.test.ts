import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeAdminState, parseCsvLine, parseServersState, parseShowStat } from '../../src/haproxy/stats.js'

// Captured from HAProxy 2.6.12 (Debian 12): node1 agent `ready up 80%`, node2 agent
// `drain up 100%`, node3 agent `ready down #no workers, "restarting"`, node4 `set server
// tlsfleet/node4 state maint` without checks, node5 a refused health check.
const SHOW_STAT_2_6 = [
  "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,",
  "tls_in,FRONTEND,,,0,0,9981,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,0,0,0,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,",
  "tlsfleet,node1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,80,1,0,0,0,2,0,,1,3,1,,0,,2,0,,0,L4OK,,0,,,,,,,,,,,0,0,,,,,-1,,via agent : up,0,0,0,0,L7OK,0,0,Layer4 check passed,Layer7 check passed,2,3,4,1,1,1,127.0.0.1:36161,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,80,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "tlsfleet,node2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN (agent),100,1,0,0,0,2,0,,1,3,2,,0,,2,0,,0,L4OK,,0,,,,,,,,,,,0,0,,,,,-1,,via agent : up,0,0,0,0,L7OK,0,0,Layer4 check passed,Layer7 check passed,2,3,4,1,1,1,127.0.0.1:36161,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "tlsfleet,node3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN (agent),100,1,0,0,1,2,2,,1,3,3,,0,,2,0,,0,L4OK,,0,,,,,,,,,,,0,0,,,,,-1,,\"via agent : down (no workers, \"\"restarting\"\")\",0,0,0,0,L7STS,0,0,Layer4 check passed,Layer7 wrong status,2,3,4,1,1,0,127.0.0.1:36161,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "tlsfleet,node4,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,100,1,0,,,0,,,1,3,4,,0,,2,0,,0,,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:36161,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "tlsfleet,node5,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,100,1,0,1,1,2,2,,1,3,5,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:1,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "tlsfleet,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,80,1,0,,0,2,0,,1,3,0,,0,,1,0,,0,,,,,,,,,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,roundrobin,,,,,,,0,0,0,,,,,0,0,0,0,0,,,,,80,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,",
  ""
].join('\n')

const SERVERS_STATE_2_6 = [
  "1",
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
  "3 tlsfleet 1 node1 127.0.0.1 2 0 80 100 2 6 3 4 6 22 0 0 - 36161 - 0 0 - - 39305",
  "3 tlsfleet 2 node2 127.0.0.1 2 8 100 100 2 6 3 4 6 22 0 0 - 36161 - 0 0 - - 36757",
  "3 tlsfleet 3 node3 127.0.0.1 0 0 100 100 2 6 3 4 6 22 0 0 - 36161 - 0 0 - - 35141",
  "3 tlsfleet 4 node4 127.0.0.1 0 1 100 100 0 1 0 0 0 0 0 0 - 36161 - 0 0 - - 0",
  "3 tlsfleet 5 node5 127.0.0.1 0 0 100 100 2 8 2 0 6 0 0 0 - 1 - 0 0 - - 0",
  ""
].join('\n')

test('show stat: columns are mapped by header name', () => {
  const rows = parseShowStat(SHOW_STAT_2_6)
  assert.deepEqual(rows.map((r) => `${r.pxname}/${r.svname}`), [
    'tls_in/FRONTEND', 'tlsfleet/node1', 'tlsfleet/node2', 'tlsfleet/node3', 'tlsfleet/node4', 'tlsfleet/node5', 'tlsfleet/BACKEND'
  ])
  const byName = new Map(rows.map((r) => [r.svname, r]))
  const node1 = byName.get('node1')
  assert.equal(node1?.status, 'UP')
  assert.equal(node1?.weight, 80)
  assert.equal(node1?.uweight, 80)
  assert.equal(node1?.sid, 1)
  assert.equal(node1?.type, 2)
  assert.equal(node1?.scur, 0)
  assert.equal(node1?.check_status, 'L4OK')
  assert.equal(node1?.agent_status, 'L7OK')
  assert.equal(node1?.agent_desc, 'Layer7 check passed')
  assert.equal(node1?.last_agt, 'via agent : up')
  assert.equal(node1?.addr, '127.0.0.1:36161')
  assert.equal(byName.get('node2')?.status, 'DRAIN (agent)')
  assert.equal(byName.get('node3')?.status, 'DOWN (agent)')
  assert.equal(byName.get('node4')?.status, 'MAINT')
  assert.equal(byName.get('node4')?.check_status, undefined)
  assert.equal(byName.get('node5')?.status, 'DOWN')
  assert.equal(byName.get('node5')?.check_status, 'L4CON')
  assert.equal(byName.get('node5')?.last_chk, 'Connection refused')
  assert.equal(byName.get('FRONTEND')?.status, 'OPEN')
  assert.equal(byName.get('FRONTEND')?.weight, undefined)
  assert.equal(byName.get('BACKEND')?.weight, 80)
})

test('show stat: a quoted cell with commas and doubled quotes stays one cell', () => {
  const node3 = parseShowStat(SHOW_STAT_2_6).find((r) => r.svname === 'node3')
  assert.equal(node3?.last_agt, 'via agent : down (no workers, "restarting")')
  // Columns after the quoted cell are still aligned.
  assert.equal(node3?.agent_status, 'L7STS')
  assert.equal(node3?.addr, '127.0.0.1:36161')
})

test('show stat: a check under way ("* L7STS") gives its status and says it is running', () => {
  // HAProxy prefixes the last status with "* " while that check is in flight (stats.c, CHK_ST_INPROGRESS).
  const text = '# pxname,svname,status,check_status,agent_status,\ntlsfleet,node1,DOWN (agent),L4OK,* L7STS,\ntlsfleet,node2,UP,* L4OK,,\n'
  const [node1, node2] = parseShowStat(text)
  assert.equal(node1?.agent_status, 'L7STS')
  assert.equal(node1?.agent_running, true)
  assert.equal(node1?.check_status, 'L4OK')
  assert.equal(node1?.check_running, false)
  assert.equal(node2?.check_status, 'L4OK')
  assert.equal(node2?.check_running, true)
  assert.equal(node2?.agent_status, undefined)
  assert.equal(node2?.agent_running, false)
})

test('show stat: a reordered header is still mapped by name', () => {
  const text = '# svname,weight,pxname,status,\nnode1,42,tlsfleet,UP,\n\n'
  const [row] = parseShowStat(text)
  assert.equal(row?.pxname, 'tlsfleet')
  assert.equal(row?.svname, 'node1')
  assert.equal(row?.weight, 42)
  assert.equal(row?.status, 'UP')
})

test('show stat: text without the header is an error naming the problem', () => {
  assert.throws(() => parseShowStat('Permission denied\n'), /no "# pxname/)
})

test('parseCsvLine handles empty, quoted and escaped cells', () => {
  assert.deepEqual(parseCsvLine('a,,"b,c","d""e",'), ['a', '', 'b,c', 'd"e', ''])
})

test('show servers state: rows with op and admin states decoded', () => {
  const rows = parseServersState(SERVERS_STATE_2_6)
  assert.equal(rows.length, 5)
  const [node1, node2, node3, node4, node5] = rows
  assert.equal(node1?.be_name, 'tlsfleet')
  assert.equal(node1?.be_id, 3)
  assert.equal(node1?.srv_name, 'node1')
  assert.equal(node1?.srv_id, 1)
  assert.equal(node1?.srv_addr, '127.0.0.1')
  assert.equal(node1?.op_state, 'RUNNING')
  assert.deepEqual(node1?.admin_flags, [])
  assert.equal(node1?.srv_uweight, 80)
  assert.equal(node1?.srv_iweight, 100)
  assert.equal(node1?.srv_port, 36161)
  assert.equal(node1?.srv_agent_port, 39305)
  assert.equal(node1?.fields.srv_fqdn, '-')
  assert.deepEqual(node2?.admin_flags, ['FDRAIN'])
  assert.equal(node2?.drain, true)
  assert.equal(node2?.maint, false)
  assert.equal(node3?.op_state, 'STOPPED')
  assert.deepEqual(node4?.admin_flags, ['FMAINT'])
  assert.equal(node4?.maint, true)
  assert.equal(node4?.drain, false)
  assert.equal(node5?.op_state, 'STOPPED')
  assert.equal(node5?.srv_agent_port, 0)
})

test('show servers state: admin bits decode to every flag', () => {
  assert.deepEqual(decodeAdminState(0x7f), ['FMAINT', 'IMAINT', 'CMAINT', 'FDRAIN', 'IDRAIN', 'RMAINT', 'HMAINT'])
  assert.deepEqual(decodeAdminState(0x20 | 0x08), ['FDRAIN', 'RMAINT'])
  const text = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n3 b 1 s - 1 40\n'
  const [row] = parseServersState(text)
  assert.equal(row?.op_state, 'STARTING')
  assert.equal(row?.srv_addr, undefined)
  assert.deepEqual(row?.admin_flags, ['FDRAIN', 'RMAINT'])
  assert.equal(row?.maint, true, 'RMAINT wins over drain')
  assert.equal(row?.drain, false)
})

test('show servers state: error texts and bad rows are rejected', () => {
  assert.throws(() => parseServersState("Can't find backend.\n"), /format version 1/)
  assert.throws(() => parseServersState('1\n3 b 1 s\n'), /before the "#" header/)
  assert.throws(() => parseServersState('1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n3 b 1 s x y 0\n'), /srv_op_state/)
})
