// A queue read with `for await`: producers push (from callbacks and promises), one consumer takes
// items in order, and the queue ends when closed or fails with the producer's error.

export class Inbox<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private ended: { error?: unknown } | undefined;

  push(item: T): void {
    if (this.ended !== undefined) return;
    this.items.push(item);
    this.notify();
  }

  /** Ends the queue after the items already in it; with an error, the consumer's loop throws it. */
  end(error?: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = error === undefined ? {} : { error };
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.ended !== undefined) {
        if ("error" in this.ended) throw this.ended.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
