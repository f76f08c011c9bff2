/**
 * What an HTML report shows, as data: a title and a list of sections the report page
 * (web/report/report.js) draws. The lab and the bench each turn their JSON report into one of
 * these; the page itself knows nothing about either.
 */

/** A series colour by meaning (the same on every page), or an index into the palette. */
export type SeriesColor = 'full' | 'resumed' | 'errors' | number

export interface ChartMarker {
  /** Position on the x axis (seconds since the start). */
  x: number
  label: string
  /** Drawn stronger: the event concerns the node this chart is about. */
  emphasis?: boolean
}

export interface FactsSection { kind: 'facts'; title: string; items: Array<[string, string]> }

export interface TimeSeriesSection {
  kind: 'timeseries'
  title: string
  note?: string
  xLabel: string
  yLabel: string
  x: number[]
  series: Array<{ label: string; color: SeriesColor; values: number[] }>
  markers: ChartMarker[]
  /** Small multiples: consecutive compact charts share a row. */
  compact?: boolean
}

export interface BarGroup { label: string; bars: Array<{ label: string; value: number; note?: string }> }

export interface BarsSection { kind: 'bars'; title: string; note?: string; unit: string; groups: BarGroup[]; decimals?: number }

/** Preformatted text: the tables as the terminal prints them. */
export interface TextSection { kind: 'text'; title: string; note?: string; text: string }

export type ReportSection = FactsSection | TimeSeriesSection | BarsSection | TextSection

export interface ReportDocument {
  title: string
  subtitle: string
  generatedAt: string
  sections: ReportSection[]
}
