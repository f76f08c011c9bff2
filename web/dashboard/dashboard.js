/*
 * The live dashboard of one tlsfleet node. It polls GET /v1/dashboard on the node that served
 * it (same origin) every two seconds and draws what it gets; it never changes anything. When
 * the node has an admin token, the page first shows what the public /health says and asks
 * for the token, which it keeps in this tab's session storage and sends as a bearer header.
 * Everything the node says is put in the page as text (textContent), never as HTML.
 */
/* global TlsfleetCharts */
'use strict'

;(function () {
  var POLL_MS = 2000
  var MAX_BACKOFF_MS = 15000
  // A node that stops answering (frozen, paused, a tunnel cut) leaves a request open for
  // minutes: without a deadline the page went on showing its last state as if it were now's.
  // Above the slowest answer of a node that does answer: with its HAProxy socket hung, about 4 s
  // (two Runtime API reads, each given up after 2-3 s).
  var REQUEST_TIMEOUT_MS = 8000
  var TOKEN_KEY = 'tlsfleet-admin-token'
  var tokenRequired = document.querySelector('meta[name="tlsfleet-token"]').getAttribute('content') === 'required'
  var C = TlsfleetCharts.COLORS
  var charts = {}
  var failures = 0
  var timer

  function $ (selector) { return document.querySelector(selector) }
  function field (name) { return $('[data-field="' + name + '"]') }

  function el (tag, text, className) {
    var node = document.createElement(tag)
    if (text !== undefined && text !== null) node.textContent = String(text)
    if (className) node.className = className
    return node
  }

  function fmtInt (n) { return typeof n === 'number' ? Math.round(n).toLocaleString('en-US') : '–' }
  function fmtRatio (r) { return r === null || r === undefined ? '–' : (r * 100).toFixed(1) + ' %' }
  function fmtBytes (n) {
    if (n < 1024) return n + ' B'
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB'
    return (n / 1024 / 1024).toFixed(1) + ' MiB'
  }
  function fmtDuration (s) {
    if (s < 60) return s + ' s'
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
  }
  function fmtTime (iso) { return iso ? new Date(iso).toLocaleTimeString('en-GB') : '–' }

  function setFacts (name, pairs) {
    var dl = field(name)
    dl.textContent = ''
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === '') return
      var dt = el('dt', p[0])
      var dd = el('dd', p[1], p[3])
      if (p[2]) dd.setAttribute('data-field', p[2])
      dl.appendChild(dt)
      dl.appendChild(dd)
    })
  }

  function fillTable (name, rows, rowClass) {
    var body = field(name).querySelector('tbody')
    body.textContent = ''
    rows.forEach(function (cells, i) {
      var tr = el('tr')
      var cls = rowClass ? rowClass(i) : ''
      if (cls) tr.className = cls
      cells.forEach(function (c) {
        if (c instanceof Node) { var td = el('td'); td.appendChild(c); tr.appendChild(td) } else tr.appendChild(el('td', c))
      })
      body.appendChild(tr)
    })
    if (rows.length === 0) {
      var tr = el('tr')
      var td = el('td', 'none', 'muted')
      td.colSpan = field(name).querySelectorAll('th').length
      tr.appendChild(td)
      body.appendChild(tr)
    }
  }

  function badge (state, health, effective) {
    var b = field('state-badge')
    b.textContent = health === 'up' ? state + ' · up' : state + ' · down'
    b.className = 'badge ' + (effective === 'ready' ? 'ok' : effective === 'down' ? 'bad' : 'warn')
  }

  // No answer: the figures on the page are the last ones read, and the badge must not go on
  // showing a state the node may no longer be in.
  function unreachable () {
    var b = field('state-badge')
    b.textContent = 'no answer'
    b.className = 'badge bad'
  }

  function problem (text) {
    var p = field('problem')
    p.hidden = !text
    p.textContent = text || ''
  }

  function token () { return sessionStorage.getItem(TOKEN_KEY) }

  function get (path, headers) {
    return fetch(path, { headers: headers || {}, cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  }

  function why (err) {
    return err && err.name === 'TimeoutError' ? 'no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s' : err.message
  }

  function showAuth (message) {
    $('[data-section="auth"]').hidden = false
    $('[data-section="details"]').hidden = true
    field('auth-message').textContent = message || ''
  }

  function ratioCell (r) {
    var span = el('span')
    if (r !== null && r !== undefined) {
      var bar = el('span', null, 'ratio')
      bar.style.width = Math.round(r * 60) + 'px'
      span.appendChild(bar)
    }
    span.appendChild(document.createTextNode(fmtRatio(r)))
    return span
  }

  function ensureCharts () {
    if (charts.handshakes) return
    charts.handshakes = TlsfleetCharts.timeSeries($('[data-chart="handshakes"]'), {
      time: true,
      minSpan: 60,
      yLabel: 'handshakes / s',
      series: [{ label: 'full', color: C.full }, { label: 'resumed', color: C.resumed }]
    })
    charts.sync = TlsfleetCharts.timeSeries($('[data-chart="sync"]'), {
      time: true,
      minSpan: 60,
      height: 200,
      yLabel: 'packets / s',
      series: [
        { label: 'in accepted', color: C.in },
        { label: 'in rejected', color: C.rejected },
        { label: 'out sent', color: C.out },
        { label: 'out send errors', color: C.sendErrors }
      ]
    })
  }

  function render (d) {
    var s = d.node
    field('node').textContent = s.node
    document.title = 'tlsfleet ' + s.node + ': ' + s.effective
    badge(s.state, s.health, s.effective)
    field('updated').textContent = 'updated ' + fmtTime(d.generatedAt)
    $('[data-section="auth"]').hidden = true
    $('[data-section="details"]').hidden = false

    setFacts('node-facts', [
      ['state', s.state, 'state'],
      ['health', s.health + (s.reason ? ' (' + s.reason + ')' : ''), 'health'],
      ['agent says', s.agentReply, 'agent-reply'],
      ['agent weight', s.weightPercent + ' %', 'weight'],
      ['spare capacity', s.spareCapacity !== undefined ? (s.spareCapacity * 100).toFixed(0) + ' %' : undefined],
      ['event loop', s.eventLoopUtilization !== undefined ? (s.eventLoopUtilization * 100).toFixed(0) + ' % busy' : undefined],
      ['TLS by', s.terminator ? (s.terminator.kind === 'haproxy' ? 'a local HAProxy' : 'tlsfleet\'s workers') + (s.terminator.serving ? '' : ' (not serving' + (s.terminator.reason ? ': ' + s.terminator.reason : '') + ')') : undefined, 'terminator'],
      ['workers', s.workers.configured > 0 ? s.workers.listening + ' of ' + s.workers.configured + ' listening' : undefined],
      ['connections', fmtInt(s.connections), 'connections'],
      ['maxconn', s.maxconn],
      ['changed', s.changedAt ? fmtTime(s.changedAt) : undefined]
    ])

    var minute = d.lastMinute
    var moved = minute.full + minute.resumed
    setFacts('handshake-facts', [
      ['full', fmtInt(s.handshakes.full), 'full-total'],
      ['resumed', fmtInt(s.handshakes.resumed), 'resumed-total'],
      ['now', s.handshakes.perSecond.toFixed(1) + ' / s', 'per-second'],
      ['last minute', fmtInt(minute.full) + ' full, ' + fmtInt(minute.resumed) + ' resumed'],
      ['resumed share', moved > 0 ? fmtRatio(minute.resumed / moved) + ' (last minute)' : '–', 'resumed-share']
    ])

    var t = d.tickets
    setFacts('ticket-facts', t.enabled
      ? [
          ['generation', t.generation, 'ticket-generation'],
          ['key name', t.keyName],
          ['keys', t.farmWide ? 'farm-wide (from the farm secret' + (t.farmSecrets > 1 ? 's' : '') + ')' : 'this node only (no farm secret)'],
          ['issued since', fmtTime(t.since)],
          ['next rotation', fmtTime(t.nextRotation) + ' (in ' + fmtDuration(t.secondsToNextRotation) + ')', 'next-rotation'],
          ['period', fmtDuration(t.rotationSeconds)],
          ['accepted', t.acceptedGenerations.join(', ')]
        ]
      : [['tickets', 'off (--session-tickets off): TLS 1.2 resumes by session ID only']])

    renderStore(s.store)

    ensureCharts()
    var h = d.history
    charts.handshakes.setData(h.t, [h.full, h.resumed])
    charts.sync.setData(h.t, [h.syncIn, h.syncRejected, h.syncOut, h.syncSendErrors])

    fillTable('cache-table', d.cache.map(function (c) {
      return [c.level.toUpperCase(), fmtInt(c.entries), fmtBytes(c.bytes), ratioCell(c.hitRatio), ratioCell(c.lastMinute.hitRatio), fmtInt(c.hits) + ' / ' + fmtInt(c.misses)]
    }))

    field('sync-listen').textContent = d.sync.listen === 'off' ? 'Farm sync is off on this node (--sync-listen).' : 'Listening on ' + d.sync.listen + '.'
    fillTable('sync-table', d.sync.packets.filter(function (p) { return p.total > 0 || p.result === 'accepted' || p.result === 'sent' }).map(function (p) {
      return [p.direction, p.result, fmtInt(p.total), fmtInt(p.lastMinute)]
    }))

    var farm = d.haproxy
    if (farm === undefined) {
      field('haproxy-note').textContent = 'This node has no HAProxy Runtime API socket (--haproxy-socket and --haproxy-server): HAProxy\'s view of the farm is not available here.'
      fillTable('haproxy-table', [])
    } else {
      field('haproxy-note').textContent = 'Backend ' + farm.backend + ' through ' + farm.socket + (farm.reachable ? '' : ': unreachable') + (farm.error ? ' (' + farm.error + ')' : '') + '. Highlighted: this node.'
      fillTable('haproxy-table', farm.servers.map(function (r) {
        return [r.name, r.status, r.weight, r.currentSessions, r.checkStatus, r.agentStatus, r.lastAgent, r.address]
      }), function (i) { return farm.servers[i].self ? 'self' : '' })
    }

    renderCertificates(d.certificates)

    fillTable('peers-table', d.sync.peers.map(function (p) {
      var rejected = Object.keys(p.rejected).filter(function (k) { return p.rejected[k] > 0 }).map(function (k) { return k + ' ' + p.rejected[k] }).join(', ')
      // Multicast rows are nodes: every address the node was heard from.
      return [p.addresses ? p.addresses.join(', ') : p.address, p.nodeId, p.lastSeen ? fmtTime(p.lastSeen) : 'never', fmtInt(p.packetsIn), fmtInt(p.packetsOut), fmtInt(p.sendErrors || 0), rejected || '0']
    }))
  }

  // The node serves without its store, so a lost connection never shows in health: said here, marked.
  function renderStore (st) {
    if (!st) {
      setFacts('store-facts', [['store', 'none (--session-store): the farm sync alone shares sessions']])
      return
    }
    var breakers = ['lookups', 'writes', 'deletes'].map(function (k) { return k + ' ' + st[k].replace('_', '-') }).join(', ')
    setFacts('store-facts', [
      ['store', st.target],
      ['connection', st.connected ? 'connected' : 'not connected: serving without it, reconnecting', 'store-connection', st.connected ? 'ok' : 'warn'],
      ['circuits', breakers, 'store-circuits']
    ])
  }

  // Rows that need the operator are marked: the node says which (attention: expired or within 14 days of the end, revoked, no staple), as it does to tlsfleet status.
  function renderCertificates (c) {
    field('certificates-note').textContent = c.note ? c.note : (c.ocspStapling ? 'OCSP stapling is on (--ocsp-dir).' : 'OCSP stapling is off (--ocsp-dir).') + ' The one marked default is what clients without SNI get.' + (c.omitted ? ' ' + c.omitted + ' more, none of them expiring sooner or unstapled: GET /v1/certificates lists them all.' : '')
    fillTable('certificates-table', c.certificates.map(function (x) {
      var days = x.expiresInDays < 0 ? 'EXPIRED ' + (-x.expiresInDays) + ' day(s) ago' : 'in ' + x.expiresInDays + ' day(s)'
      var ocsp = !x.ocsp ? '-' : x.ocsp.status === 'none' ? 'none: ' + (x.ocsp.reason || '?') : x.ocsp.status + (x.ocsp.nextUpdate ? ', next update ' + x.ocsp.nextUpdate.slice(0, 16).replace('T', ' ') + ' UTC' : '')
      return [x.names.join(', ') + (x.default ? ' (default)' : ''), x.file, x.keyType + (x.curve ? ' ' + x.curve : ''), x.notAfter.slice(0, 10) + ' (' + days + ')', ocsp]
    }), function (i) {
      return c.certificates[i].attention.length > 0 ? 'attention' : ''
    })
  }

  function renderHealth (h) {
    badge(h.state, h.health, h.health === 'up' ? (h.state === 'ready' ? 'ready' : h.state) : 'down')
    field('updated').textContent = 'health checked ' + new Date().toLocaleTimeString('en-GB') + (h.reason ? ' · ' + h.reason : '')
  }

  function schedule () {
    var delay = failures === 0 ? POLL_MS : Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, failures))
    // One pending poll at most, even when the token form starts one early.
    clearTimeout(timer)
    timer = setTimeout(poll, delay)
  }

  function poll () {
    var stored = token()
    if (tokenRequired && !stored) {
      // Without the token only the public /health answers: show the state, ask for the token.
      get('/health').then(function (res) { return res.json() }).then(function (h) {
        failures = 0
        problem('')
        renderHealth(h)
      }).catch(function (err) {
        failures++
        unreachable()
        problem('Cannot reach the node: ' + why(err) + '; retrying.')
      }).then(schedule)
      return
    }
    var headers = stored ? { authorization: 'Bearer ' + stored } : {}
    get('/v1/dashboard', headers).then(function (res) {
      if (res.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY)
        tokenRequired = true
        showAuth('The node refused that token.')
        return undefined
      }
      if (!res.ok) return res.json().then(function (e) { throw new Error(res.status + ' ' + (e.message || e.error)) })
      return res.json().then(function (d) {
        failures = 0
        problem('')
        render(d)
      })
    }).catch(function (err) {
      failures++
      unreachable()
      problem('Cannot read the node\'s dashboard data: ' + why(err) + '; the figures below are the last ones read; retrying.')
    }).then(schedule)
  }

  field('auth-form').addEventListener('submit', function (event) {
    event.preventDefault()
    var input = event.target.elements.token
    var given = input.value.trim()
    input.value = ''
    // Tokens are printable ASCII (the node refuses others in its token file). A character
    // pasted along (a zero-width space from a chat) cannot even go in a header: the request
    // failed in the browser, and the page blamed the node ("no answer").
    if (!/^[\x21-\x7e]+$/.test(given)) {
      field('auth-message').textContent = 'That is not a token: a token is printable ASCII without spaces, and what was entered has other characters (pasted along with it?).'
      return
    }
    sessionStorage.setItem(TOKEN_KEY, given)
    field('auth-message').textContent = 'Checking…'
    failures = 0
    clearTimeout(timer)
    poll()
  })

  if (tokenRequired && !token()) showAuth('')
  poll()
})()
