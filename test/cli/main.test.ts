/**
 * Proves that the `txlog` bin dispatches through its command table: `--help`, `help` and
 * `help COMMAND` print help on stdout and exit 0; no command, an unknown command or an option
 * before the command is a usage error (exit 2, one line on stderr, no stack trace).
 */
import { describe, expect, it } from 'vitest';
import { runCli, useBuiltCli } from './helpers.js';

const cli = useBuiltCli();

describe('txlog', () => {
  it('lists its commands for --help and help', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, args.join(' ')).toBe(0);
      expect(result.stdout).toMatch(/^Usage: txlog COMMAND/);
      expect(result.stdout).toMatch(/^\s+inspect\s+\S/m);
      expect(result.stdout).toContain('Exit codes: 0 done, 1 the request failed, 2 usage, 3 corruption found, 4 no primary reachable');
      expect(result.stderr).toBe('');
    }
  });

  it("prints a command's help for help COMMAND and COMMAND --help", async () => {
    for (const args of [['help', 'inspect'], ['inspect', '--help'], ['inspect', '-h']]) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, args.join(' ')).toBe(0);
      expect(result.stdout).toMatch(/^Usage: txlog inspect DIR/);
      expect(result.stdout).toContain('--strict');
      expect(result.stdout).toContain('Torn tail');
    }
  });

  it('exits 2 with one line for no command, an unknown command and an option before the command', async () => {
    const none = await runCli(cli(), []);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/^Usage: txlog COMMAND/);
    for (const args of [['frobnicate'], ['help', 'frobnicate'], ['--verbose', 'inspect'], ['toString']]) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^txlog: USAGE: /);
    }
  });
});
