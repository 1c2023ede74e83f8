/**
 * Proves that the library's dependency arrows point one way, as ARCHITECTURE.md's layer map
 * says: `cli → bench → replication → engine → wal` (bench is a leaf that only the `txlog bench`
 * command enters; it never imports the CLI), and that no library file imports itself back
 * through others (a cycle, such as the one `cli/inspect*.ts` had through `InspectRequest`).
 *
 * It reads the import lines of every library source file as text: static imports and
 * re-exports (type-only ones too: a type cycle is still two files that cannot be read apart)
 * and dynamic `import()`. A dynamic import counts for the layers but not for cycles: the arbiter
 * loads its etcd implementation on demand (`replication/arbiter.ts`), and that implementation
 * imports the interface module it implements.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Each library directory with its rank: a file may import its own rank or lower ones only. */
const layerRanks = { wal: 0, engine: 1, replication: 2, bench: 3, cli: 4 } as const;
type Layer = keyof typeof layerRanks;
const layers = Object.keys(layerRanks) as Layer[];

interface Edge {
  from: string;
  to: string;
  dynamic: boolean;
}

const staticImport = /^(?:import|export)\b[^;]*?\bfrom\s+['"]([^'"]+)['"]/gms;
const bareImport = /^import\s+['"]([^'"]+)['"]/gm;
const dynamicImport = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function libraryFiles(): string[] {
  const files = layers.flatMap((layer) =>
    readdirSync(path.join(repositoryRoot, layer))
      .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
      .map((name) => `${layer}/${name}`),
  );
  return ['index.ts', ...files];
}

/** Relative imports of `file`, as repository paths of .ts files. */
function importsOf(file: string): Edge[] {
  const source = readFileSync(path.join(repositoryRoot, file), 'utf8');
  const edges: Edge[] = [];
  const add = (specifier: string, dynamic: boolean): void => {
    if (!specifier.startsWith('.')) return; // node: and packages
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
    edges.push({ from: file, to: target, dynamic });
  };
  for (const match of source.matchAll(staticImport)) add(match[1]!, false);
  for (const match of source.matchAll(bareImport)) add(match[1]!, false);
  for (const match of source.matchAll(dynamicImport)) add(match[1]!, true);
  return edges;
}

function layerOf(file: string): Layer | 'entry' | undefined {
  if (file === 'index.ts') return 'entry';
  const top = file.split('/')[0];
  return layers.find((layer) => layer === top);
}

/** `from → to` is allowed when `to` is in `from`'s layer or below; the entry sees no CLI or bench. */
function allowed(from: string, to: string): boolean {
  const fromLayer = layerOf(from);
  const toLayer = layerOf(to);
  if (fromLayer === undefined || toLayer === undefined || toLayer === 'entry') return toLayer !== 'entry';
  if (fromLayer === 'entry') return layerRanks[toLayer] <= layerRanks.replication;
  return layerRanks[toLayer] <= layerRanks[fromLayer];
}

/** Strongly connected components of more than one file (Tarjan), each sorted. */
function cyclesOf(files: readonly string[], edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((file) => [file, []]));
  for (const edge of edges) if (!edge.dynamic && next.has(edge.to)) next.get(edge.from)!.push(edge.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (file: string): void => {
    index.set(file, index.size);
    low.set(file, index.get(file)!);
    stack.push(file);
    onStack.add(file);
    for (const target of next.get(file)!) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    for (;;) {
      const member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
      if (member === file) break;
    }
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const file of files) if (!index.has(file)) visit(file);
  return cycles;
}

describe('layers', () => {
  const files = libraryFiles();
  const edges = files.flatMap(importsOf);

  it('reads the import lines it should (a parser that finds nothing would pass anything)', () => {
    const has = (from: string, to: string, dynamic = false): boolean =>
      edges.some((edge) => edge.from === from && edge.to === to && edge.dynamic === dynamic);
    expect(has('engine/store.ts', 'wal/errors.ts')).toBe(true); // one line, named imports
    expect(has('bench/commit-bench.ts', 'bench/bench-types.ts')).toBe(true); // a multi-line import
    expect(has('replication/arbiter.ts', 'replication/arbiter-etcd.ts', true)).toBe(true);
    expect(edges.length).toBeGreaterThan(200);
  });

  it('has every import point to its own layer or a lower one', () => {
    const upward = edges.filter((edge) => !allowed(edge.from, edge.to)).map((edge) => `${edge.from} → ${edge.to}`);
    expect(upward).toEqual([]);
  });

  it('refuses an upward import when it sees one', () => {
    expect(allowed('wal/wal.ts', 'engine/store.ts')).toBe(false);
    expect(allowed('engine/store.ts', 'replication/node.ts')).toBe(false);
    expect(allowed('replication/node.ts', 'cli/main.ts')).toBe(false);
    expect(allowed('replication/node.ts', 'bench/load.ts')).toBe(false);
    expect(allowed('bench/txlog-subjects.ts', 'cli/main.ts')).toBe(false);
    expect(allowed('index.ts', 'cli/main.ts')).toBe(false);
    expect(allowed('cli/bench.ts', 'bench/commit-bench.ts')).toBe(true);
    expect(allowed('bench/txlog-subjects.ts', 'replication/spawn-node.ts')).toBe(true);
  });

  it('has no cycle of static imports between library files', () => {
    expect(cyclesOf(files, edges)).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    const edge = (from: string, to: string): Edge => ({ from, to, dynamic: false });
    const inspect = ['cli/inspect.ts', 'cli/inspect-records.ts', 'cli/inspect-report.ts'];
    const circle = [edge(inspect[0]!, inspect[1]!), edge(inspect[1]!, inspect[0]!), edge(inspect[0]!, inspect[2]!)];
    expect(cyclesOf(inspect, circle)).toEqual([['cli/inspect-records.ts', 'cli/inspect.ts']]);
  });
});
