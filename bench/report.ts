/**
 * How a bench report is shown: a terminal table (each scenario beside its floor) and a
 * self-contained HTML page (the same table and a latency-percentile chart drawn as inline SVG,
 * log scale, one line per scenario; nothing loaded from the network).
 */
import type { BenchReport, ScenarioResult } from './bench-types.js';
import { describeDiskInterrupts } from './disk-interrupts.js';

const fixed = (value: number | null, digits = 1): string => (value === null || Number.isNaN(value) ? '-' : value.toFixed(digits));
const integer = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-');

const columns = ['scenario', 'system', 'mode', 'fsync', 'in flight', 'p50 µs', 'p99 µs', 'p999 µs', 'max µs', 'tx/s', 'floor', 'p50/floor', 'CPU µs/tx'] as const;

/** CPU per transaction: this process, then primary+backup where there are such processes. */
function cpuCell(scenario: ScenarioResult): string {
  const cpu = scenario.cpuUsPerTransaction;
  if (cpu.bench === null) return '';
  const parts = [fixed(cpu.bench, 0)];
  if (cpu.primary !== null) parts.push(`P ${fixed(cpu.primary, 0)}`);
  if (cpu.backup !== null) parts.push(`B ${fixed(cpu.backup, 0)}`);
  return parts.join(' / ');
}

function rowCells(scenario: ScenarioResult): string[] {
  return [
    scenario.name,
    scenario.system,
    scenario.mode,
    scenario.fsync,
    String(scenario.concurrency),
    fixed(scenario.p50Us),
    fixed(scenario.p99Us),
    fixed(scenario.p999Us),
    fixed(scenario.maxUs),
    integer(scenario.throughputPerSec),
    scenario.system === 'floor' ? '' : (scenario.floor ?? '-'),
    scenario.system === 'floor' ? '' : `${fixed(scenario.p50VsFloor, 2)}x`,
    cpuCell(scenario),
  ];
}

export function formatText(report: BenchReport): string {
  const rows = report.scenarios.map(rowCells);
  const widths = columns.map((title, index) => Math.max(title.length, ...rows.map((row) => row[index]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join('  ');
  const machine = report.machine;
  const out: string[] = [];
  out.push(`txlog bench, ${machine.date}: ${machine.cpus} × ${machine.cpuModel}, ${machine.platform}, node ${machine.node}`);
  out.push(`load average at start ${machine.loadAverageStart.map((value) => value.toFixed(2)).join(' ')}, at end ${machine.loadAverageEnd.map((value) => value.toFixed(2)).join(' ')}; data under ${machine.dir}`);
  out.push(`placement: ${machine.placement}`);
  if (machine.diskInterrupts !== null) out.push(`interrupts of the data's disk during the run: ${describeDiskInterrupts(machine.diskInterrupts)}`);
  const settings = report.settings;
  const amount = settings.count === null ? `${settings.durationMs} ms` : `${settings.count} transactions`;
  out.push(`one-event transactions (event ${settings.eventBytes} B, commit record ${settings.commitRecordBytes} B), built-in append; ${amount} per scenario after ${settings.warmupMs} ms of warm-up; floors ${settings.floorMs} ms before and after`);
  out.push('');
  out.push(line(columns));
  out.push(line(columns.map((_, index) => '-'.repeat(widths[index]!))));
  let previous: string | undefined;
  for (const [index, scenario] of report.scenarios.entries()) {
    const group = scenario.system === 'floor' ? 'floor' : `${scenario.system}-${scenario.mode}-${scenario.fsync}-${scenario.tls ?? 'off'}`;
    if (previous !== undefined && group !== previous) out.push('');
    previous = group;
    out.push(line(rows[index]!));
  }
  out.push('');
  out.push(`CPU µs/tx: CPU time per transaction of this process (clients, or the whole embedded system), then P primary and B backup, summed over threads (${report.settings.cpuMethod}).`);
  out.push('A replicated commit makes two loopback round trips in sequence (client to primary, primary to backup): two-hop+fdatasync measures them with the flush overlapped; tcp-rtt is one.');
  out.push('');
  out.push('Floors:');
  for (const floor of report.floors) out.push(`  ${floor.name.padEnd(18)} ${floor.what}`);
  out.push('');
  out.push('Targets:');
  if (report.targets.length === 0) out.push('  (none measured in this run)');
  for (const target of report.targets) {
    out.push(`  ${target.met ? 'met   ' : 'MISSED'} ${target.target}: ${fixed(target.value, 2)} (${target.detail})`);
  }
  if (report.notes.length > 0) {
    out.push('');
    out.push('Notes:');
    for (const note of report.notes) out.push(`  - ${note}`);
  }
  return `${out.join('\n')}\n`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Latency by percentile (p50, p99, p999, max) on a log axis, one polyline per scenario. */
function chartSvg(scenarios: readonly ScenarioResult[]): string {
  const width = 900;
  // Tall enough for the legend: one line per scenario.
  const height = Math.max(480, 40 + scenarios.length * 13);
  const left = 70;
  const right = 330;
  const top = 20;
  const bottom = 40;
  const points = ['p50Us', 'p99Us', 'p999Us', 'maxUs'] as const;
  const labels = ['p50', 'p99', 'p99.9', 'max'];
  const values = scenarios.flatMap((scenario) => points.map((point) => scenario[point])).filter((value) => Number.isFinite(value) && value > 0);
  const lowExponent = Math.floor(Math.log10(Math.min(...values, 1)));
  const highExponent = Math.ceil(Math.log10(Math.max(...values, 10)));
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const x = (index: number): number => left + (plotWidth * index) / (points.length - 1);
  const y = (value: number): number => top + plotHeight * (1 - (Math.log10(value) - lowExponent) / Math.max(1, highExponent - lowExponent));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  for (let exponent = lowExponent; exponent <= highExponent; exponent++) {
    const value = 10 ** exponent;
    parts.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${y(value)}" y2="${y(value)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(value) + 4}" text-anchor="end">${value >= 1000 ? `${value / 1000} ms` : `${value} µs`}</text>`);
  }
  points.forEach((_, index) => {
    parts.push(`<line x1="${x(index)}" x2="${x(index)}" y1="${top}" y2="${top + plotHeight}" stroke="#eee"/>`);
    parts.push(`<text x="${x(index)}" y="${height - bottom + 18}" text-anchor="middle">${labels[index]}</text>`);
  });
  scenarios.forEach((scenario, index) => {
    const color = palette[index % palette.length]!;
    const dash = scenario.system === 'floor' ? ' stroke-dasharray="4 3"' : index >= palette.length ? ' stroke-dasharray="8 2"' : '';
    const coordinates = points
      .map((point, pointIndex) => (scenario[point] > 0 ? `${x(pointIndex).toFixed(1)},${y(scenario[point]).toFixed(1)}` : ''))
      .filter((text) => text !== '')
      .join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5"${dash} points="${coordinates}"><title>${escapeHtml(scenario.name)}</title></polyline>`);
    const legendY = top + 4 + index * 13;
    parts.push(`<line x1="${width - right + 15}" x2="${width - right + 35}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${width - right + 40}" y="${legendY + 4}">${escapeHtml(scenario.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function formatHtml(report: BenchReport): string {
  const table = [
    '<table>',
    `<thead><tr>${columns.map((title) => `<th>${escapeHtml(title)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...report.scenarios.map((scenario) => `<tr class="${scenario.system}">${rowCells(scenario).map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`),
    '</tbody></table>',
  ].join('\n');
  const targets = report.targets.map((target) => `<li class="${target.met ? 'met' : 'missed'}">${target.met ? 'met' : 'MISSED'}: ${escapeHtml(target.target)}: ${fixed(target.value, 2)} (${escapeHtml(target.detail)})</li>`).join('\n');
  const notes = report.notes.map((note) => `<li>${escapeHtml(note)}</li>`).join('\n');
  const floors = report.floors.map((floor) => `<li><b>${escapeHtml(floor.name)}</b>: ${escapeHtml(floor.what)}</li>`).join('\n');
  const machine = report.machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>txlog bench ${escapeHtml(machine.date)}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.floor td { color: #666; font-style: italic; }
li.met { color: #2a7d2a; } li.missed { color: #b00; }
</style></head><body>
<h1>txlog bench</h1>
<p>${escapeHtml(machine.date)}: ${machine.cpus} × ${escapeHtml(machine.cpuModel)}, ${escapeHtml(machine.platform)}, node ${escapeHtml(machine.node)};
load average ${machine.loadAverageStart.map((value) => value.toFixed(2)).join(' ')} at start, ${machine.loadAverageEnd.map((value) => value.toFixed(2)).join(' ')} at end.</p>
<p>Placement: ${escapeHtml(machine.placement)}</p>${machine.diskInterrupts === null ? '' : `
<p>Interrupts of the data's disk during the run: ${escapeHtml(describeDiskInterrupts(machine.diskInterrupts))}</p>`}
<p>Event ${report.settings.eventBytes} B, commit record ${report.settings.commitRecordBytes} B; ${report.settings.count === null ? `${report.settings.durationMs} ms` : `${report.settings.count} transactions`} per scenario after ${report.settings.warmupMs} ms warm-up.</p>
<h2>Latency by percentile (log scale)</h2>
${chartSvg(report.scenarios)}
<h2>Scenarios</h2>
${table}
<h2>Targets</h2>
<ul>${targets}</ul>
<h2>Floors</h2>
<ul>${floors}</ul>
<h2>Notes</h2>
<ul>${notes}</ul>
</body></html>
`;
}
