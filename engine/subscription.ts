/**
 * The subscribe loop: events in global order from a position, page by page, with `onCaughtUp`
 * called once when the first empty page shows the live edge, then live events as they arrive.
 * Where pages come from and how to wait for more is the caller's: the network client long-polls
 * the primary's `readAll` (`Client.subscribe`); the embedded store reads LMDB and waits for the
 * next apply (`Store.subscribe`).
 */
import type { RecordedEvent } from './service.js';

export interface PageSource {
  /** The page from `fromPosition` (empty at the live edge); `caughtUp` once that edge was seen. */
  page(fromPosition: number, caughtUp: boolean): Promise<readonly RecordedEvent[]> | readonly RecordedEvent[];
  /** After an empty page: resolves when more may have arrived. */
  waitForMore(): Promise<void>;
  /** The subscription ends (closed, aborted); checked before each page and after each event. */
  stopped(): boolean;
}

export async function* subscribePages(fromPosition: number, source: PageSource, onCaughtUp?: () => void): AsyncGenerator<RecordedEvent> {
  let next = fromPosition;
  let caughtUp = false;
  while (!source.stopped()) {
    const page = await source.page(next, caughtUp);
    if (page.length > 0) {
      for (const event of page) {
        yield event;
        next = event.position + 1;
        if (source.stopped()) return;
      }
      continue;
    }
    if (!caughtUp) {
      caughtUp = true;
      onCaughtUp?.();
    }
    await source.waitForMore();
  }
}
