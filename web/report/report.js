/*
 * Draws a tlsfleet HTML report (lab failover scene, bench) from the JSON inlined in the page:
 * #tlsfleet-report holds the sections to draw, #tlsfleet-raw the command's own JSON report,
 * shown at the end and offered as a download. Runs offline: everything it needs is inline.
 */
/* global TlsfleetCharts */
'use strict'

;(function () {
  var doc = JSON.parse(document.getElementById('tlsfleet-report').textContent)
  var raw = JSON.parse(document.getElementById('tlsfleet-raw').textContent)
  var main = document.getElementById('report')
  var C = TlsfleetCharts.COLORS
  var P = TlsfleetCharts.PALETTE

  function el (tag, text, className) {
    var node = document.createElement(tag)
    if (text !== undefined && text !== null) node.textContent = String(text)
    if (className) node.className = className
    return node
  }

  function colorOf (c) { return typeof c === 'number' ? P[c % P.length] : C[c] }

  function card (section, parent) {
    var box = el('section', null, 'card')
    box.setAttribute('data-section', section.kind)
    box.appendChild(el('h2', section.title))
    if (section.note) box.appendChild(el('p', section.note, 'muted note'))
    parent.appendChild(box)
    return box
  }

  var header = el('header', null, 'report')
  header.appendChild(el('h1', doc.title))
  header.appendChild(el('p', doc.subtitle, 'muted'))
  header.appendChild(el('p', 'Generated ' + new Date(doc.generatedAt).toLocaleString('en-GB'), 'muted'))
  main.textContent = ''
  main.appendChild(header)

  // Charts are drawn once every section is in place, so each takes its final width.
  var draw = []
  var row = null
  doc.sections.forEach(function (s) {
    var parent = main
    if (s.kind === 'timeseries' && s.compact) {
      if (row === null) { row = el('div', null, 'small-multiples'); main.appendChild(row) }
      parent = row
    } else row = null
    var box = card(s, parent)
    if (s.kind === 'facts') {
      var dl = el('dl', null, 'facts')
      s.items.forEach(function (item) { dl.appendChild(el('dt', item[0])); dl.appendChild(el('dd', item[1])) })
      box.appendChild(dl)
    } else if (s.kind === 'timeseries') {
      var holder = el('div', null, 'chart')
      holder.setAttribute('data-chart', s.title)
      box.appendChild(holder)
      draw.push(function () {
        var chart = TlsfleetCharts.timeSeries(holder, {
          xLabel: s.xLabel,
          yLabel: s.yLabel,
          height: s.compact ? 220 : 280,
          markers: s.markers,
          series: s.series.map(function (x) { return { label: x.label, color: colorOf(x.color) } })
        })
        chart.setData(s.x, s.series.map(function (x) { return x.values }))
      })
    } else if (s.kind === 'bars') {
      var bars = el('div', null, 'chart')
      bars.setAttribute('data-chart', s.title)
      box.appendChild(bars)
      draw.push(function () { TlsfleetCharts.bars(bars, { title: s.title, unit: s.unit, decimals: s.decimals, groups: s.groups }) })
    } else if (s.kind === 'text') {
      box.appendChild(el('pre', s.text))
    }
  })

  draw.forEach(function (fn) { fn() })

  // The command's own JSON report, to read here or to save next to this page.
  var rawBox = card({ kind: 'raw', title: 'Raw JSON report', note: 'What the command prints with --json.' }, main)
  var link = el('a', 'Download the JSON', 'download')
  link.href = URL.createObjectURL(new Blob([JSON.stringify(raw, null, 2) + '\n'], { type: 'application/json' }))
  link.download = (doc.title.replace(/[^a-z0-9]+/gi, '-').toLowerCase() || 'report') + '.json'
  rawBox.appendChild(link)
  var details = el('details')
  details.appendChild(el('summary', 'Show the JSON'))
  details.appendChild(el('pre', JSON.stringify(raw, null, 2)))
  rawBox.appendChild(details)
})()
