// Two cluster workers of one primary open the WAL in argv[2] for writing, one after the other,
// and report to the primary, which prints one JSON line: [first worker's result, second's].
// A worker holds the log until the primary has both results; then all exit.
import cluster from 'node:cluster';
import { Wal } from '../../dist/wal/index.js';

const dir = process.argv[2];
if (cluster.isPrimary) {
  const results = [];
  const workers = [];
  const next = () => {
    const worker = cluster.fork();
    workers.push(worker);
    worker.on('message', (message) => {
      results.push(message);
      if (results.length === 1) next();
      else {
        process.stdout.write(`${JSON.stringify(results)}\n`);
        for (const each of workers) each.send('exit');
      }
    });
  };
  next();
} else {
  let wal;
  try {
    wal = await Wal.open({ dir, preallocate: false, log: () => undefined });
    process.send('opened');
  } catch (error) {
    process.send(`refused ${error.code}`);
  }
  process.on('message', async () => {
    await wal?.close();
    process.exit(0);
  });
}
