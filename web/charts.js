/*
 * tlsfleet's charts, shared by the live dashboard and the HTML reports. A plain browser
 * script (no build step, no modules, so a report can inline it): it defines one global,
 * TlsfleetCharts. Time series are drawn by uPlot (loaded before this file); bar charts are
 * plain SVG. Every chart container gets data-points: how many values it drew, so a test
 * (or a curious person) can tell an empty chart from a drawn one.
 */
/* global uPlot */
'use strict'

window.TlsfleetCharts = (function () {
  var SVG_NS = 'http://www.w3.org/2000/svg'

  /** Series colours: the same meaning has the same colour on every page. */
  var COLORS = {
    full: '#d9480f',
    resumed: '#2b8a3e',
    errors: '#868e96',
    in: '#1c7ed6',
    rejected: '#c2255c',
    out: '#7048e8',
    sendErrors: '#f08c00'
  }
  var PALETTE = ['#1c7ed6', '#2b8a3e', '#d9480f', '#7048e8', '#c2255c', '#f08c00', '#0b7285', '#5c940d']

  function countPoints (data) {
    var n = 0
    for (var s = 1; s < data.length; s++) {
      for (var i = 0; i < data[s].length; i++) if (data[s][i] !== null && data[s][i] !== undefined) n++
    }
    return n
  }

  /** Vertical dashed lines with a label at the top: the moments something happened. */
  function markerPlugin (getMarkers) {
    return {
      hooks: {
        draw: [function (u) {
          var markers = getMarkers()
          if (markers.length === 0) return
          var ctx = u.ctx
          var ratio = uPlot.pxRatio
          var top = u.bbox.top
          var bottom = u.bbox.top + u.bbox.height
          ctx.save()
          ctx.font = (11 * ratio) + 'px system-ui, sans-serif'
          ctx.textBaseline = 'top'
          var lastRight = -Infinity
          var row = 0
          markers.forEach(function (m) {
            var x = Math.round(u.valToPos(m.x, 'x', true))
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return
            ctx.strokeStyle = m.emphasis ? '#c92a2a' : '#495057'
            ctx.lineWidth = (m.emphasis ? 2 : 1) * ratio
            ctx.setLineDash([5 * ratio, 4 * ratio])
            ctx.beginPath()
            ctx.moveTo(x, top)
            ctx.lineTo(x, bottom)
            ctx.stroke()
            // Labels that would overlap the previous one go one line lower.
            var width = ctx.measureText(m.label).width
            row = x < lastRight ? row + 1 : 0
            lastRight = x + width + 8 * ratio
            ctx.fillStyle = 'rgba(255,255,255,0.85)'
            ctx.fillRect(x + 3 * ratio, top + 2 * ratio + row * 14 * ratio, width + 4 * ratio, 13 * ratio)
            ctx.fillStyle = m.emphasis ? '#c92a2a' : '#343a40'
            ctx.fillText(m.label, x + 5 * ratio, top + 3 * ratio + row * 14 * ratio)
          })
          ctx.restore()
        }]
      }
    }
  }

  /**
   * A time series chart. opts: { title, series: [{ label, color }], xLabel, yLabel, time
   * (x in Unix seconds) or not (x in seconds since a start), height, markers }.
   * Returns { setData(x, ys, markers), element }.
   */
  function timeSeries (container, opts) {
    var markers = opts.markers || []
    var width = function () { return Math.max(280, container.clientWidth || 600) }
    var data = [[]].concat(opts.series.map(function () { return [] }))
    // A short history still spans opts.minSpan on x, so the first seconds do not fill the width.
    function xRange (u, min, max) {
      if (min === null || max === null) return [0, opts.minSpan || 1]
      if (opts.minSpan && max - min < opts.minSpan) return [max - opts.minSpan, max]
      return min === max ? [min - 1, max + 1] : [min, max]
    }
    var plot = new uPlot({
      title: opts.title,
      width: width(),
      height: opts.height || 260,
      scales: { x: { time: Boolean(opts.time), range: xRange }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)] } } },
      series: [{ label: opts.time ? 'time' : (opts.xLabel || 'x') }].concat(opts.series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, fill: s.fill === false ? undefined : s.color + '1f', spanGaps: false }
      })),
      axes: [
        // Seconds since a start are whole seconds: no 1.25 s ticks.
        opts.time ? { label: opts.xLabel, stroke: '#495057', grid: { stroke: '#e9ecef' } } : { label: opts.xLabel, stroke: '#495057', grid: { stroke: '#e9ecef' }, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600] },
        { label: opts.yLabel, stroke: '#495057', grid: { stroke: '#e9ecef' }, size: 56 }
      ],
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      plugins: [markerPlugin(function () { return markers })]
    }, data, container)
    container.setAttribute('data-points', '0')
    function setData (x, ys, newMarkers) {
      if (newMarkers) markers = newMarkers
      var next = [x].concat(ys)
      plot.setData(next)
      container.setAttribute('data-points', String(countPoints(next)))
    }
    // Follow the container's width (window resized, grid reflowed); height changes are ours.
    var drawnWidth = width()
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = width()
        if (w !== drawnWidth) { drawnWidth = w; plot.setSize({ width: w, height: opts.height || 260 }) }
      }).observe(container)
    }
    return { setData: setData, element: container, plot: plot }
  }

  function svg (tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag)
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])) })
    if (text !== undefined) node.textContent = text
    return node
  }

  /**
   * Horizontal grouped bars in SVG. opts: { groups: [{ label, bars: [{ label, value, note }] }],
   * unit, decimals, colorOf(label) }. Values are drawn to scale against the largest one.
   */
  function bars (container, opts) {
    var barHeight = 18
    var gap = 4
    var labelWidth = 170
    var valueWidth = 200
    // Drawn at the container's size, one SVG unit per CSS pixel, so text keeps its size.
    var width = Math.max(520, Math.min(1100, container.clientWidth || 760))
    var plotWidth = width - labelWidth - valueWidth
    var max = 0
    var count = 0
    opts.groups.forEach(function (g) { g.bars.forEach(function (b) { if (b.value > max) max = b.value; count++ }) })
    var height = 0
    opts.groups.forEach(function (g) { height += 24 + g.bars.length * (barHeight + gap) + 8 })
    var root = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, width: width, height: height, role: 'img', 'aria-label': opts.title || 'bar chart', class: 'bars' })
    var y = 0
    var colors = {}
    var nextColor = 0
    var colorOf = opts.colorOf || function (label) {
      if (!(label in colors)) colors[label] = PALETTE[nextColor++ % PALETTE.length]
      return colors[label]
    }
    opts.groups.forEach(function (g) {
      root.appendChild(svg('text', { x: 0, y: y + 16, class: 'bars-group' }, g.label))
      y += 24
      g.bars.forEach(function (b) {
        var w = max > 0 ? Math.max(1, (b.value / max) * plotWidth) : 1
        root.appendChild(svg('text', { x: labelWidth - 8, y: y + barHeight - 5, 'text-anchor': 'end', class: 'bars-label' }, b.label))
        var rect = svg('rect', { x: labelWidth, y: y, width: w.toFixed(1), height: barHeight, rx: 2, fill: colorOf(b.label) })
        rect.appendChild(svg('title', {}, b.label + ': ' + b.value + ' ' + (opts.unit || '') + (b.note ? ' (' + b.note + ')' : '')))
        root.appendChild(rect)
        var shown = typeof opts.decimals === 'number' ? b.value.toFixed(opts.decimals) : String(b.value)
        root.appendChild(svg('text', { x: labelWidth + w + 6, y: y + barHeight - 5, class: 'bars-value' }, shown + (opts.unit ? ' ' + opts.unit : '') + (b.note ? '  ' + b.note : '')))
        y += barHeight + gap
      })
      y += 8
    })
    container.textContent = ''
    container.appendChild(root)
    container.setAttribute('data-points', String(count))
    return { element: container }
  }

  return { timeSeries: timeSeries, bars: bars, COLORS: COLORS, PALETTE: PALETTE }
})()
