import { bootBus } from './lib/boot-events/bus';
import { BootTracker, type BootEvent } from './lib/boot-events/tracker';
import type { NodeDef, RedApi, RedNode } from './lib/red';

interface BootEventsDef extends NodeDef {
  stallSeconds?: number | string;
  rootfsStep?: number | string;
}

function toMessage(e: BootEvent): { topic: string; payload: unknown } {
  const iso = (t: number): string => new Date(t).toISOString();
  return {
    topic: `boot/${e.stage}`,
    payload: {
      stage: e.stage,
      mac: e.client.mac,
      ip: e.client.ip,
      arch: e.client.arch,
      file: e.file,
      percent: e.percent,
      time: iso(e.at),
      // The kernel this boot fetched, handy for notifications ("booted vmlinuz-linux").
      kernel: e.timeline.find((t) => t.stage === 'kernel')?.file,
      timeline: e.timeline.map((t) => ({ ...t, time: iso(t.at) })),
    },
  };
}

export = function register(RED: RedApi): void {
  function PxeBootEventsNode(this: RedNode, def: BootEventsDef): void {
    RED.nodes.createNode(this, def);
    const stallMs = Math.max(1, Number(def.stallSeconds) || 120) * 1000;
    const step = Math.min(100, Math.max(1, Number(def.rootfsStep) || 10));
    const tracker = new BootTracker({ stallAfterMs: stallMs, rootfsStep: step });

    let shown = -1;
    const showStatus = (): void => {
      const n = tracker.activeCount;
      if (n === shown) return;
      shown = n;
      this.status(n > 0 ? { fill: 'blue', shape: 'dot', text: `${n} booting` } : { fill: 'grey', shape: 'ring', text: 'waiting' });
    };
    const emit = (events: BootEvent[]): void => {
      for (const e of events) this.send(toMessage(e));
      showStatus();
    };

    const unsubscribe = bootBus.subscribe((s) => emit(tracker.handle(s)));
    const timer = setInterval(() => emit(tracker.tick(Date.now())), 1000);
    timer.unref();
    showStatus();

    this.on('close', (_removed: boolean, done: () => void) => {
      unsubscribe();
      clearInterval(timer);
      done();
    });
  }
  RED.nodes.registerType('pxe-boot-events', PxeBootEventsNode);
};
