import { bootMonitor } from './lib/boot-events/live';
import type { BootEvent } from './lib/boot-events/tracker';
import { installBootView } from './lib/boot-events/view';
import type { NodeDef, RedApi, RedNode } from './lib/red';

interface BootEventsDef extends NodeDef {
  stallSeconds?: number | string;
  rootfsStep?: number | string;
}

function toMessage(e: BootEvent, percent: number | undefined): { topic: string; payload: unknown } {
  const iso = (t: number): string => new Date(t).toISOString();
  const payload: Record<string, unknown> = {
    stage: e.stage,
    mac: e.client.mac,
    ip: e.client.ip,
    arch: e.client.arch,
    // 'bios', 'uefi-x64', 'uefi-http' (UEFI HTTP Boot), … as the boot started (firmware.ts).
    firmware: e.client.firmware,
    file: e.file,
    percent,
    time: iso(e.at),
    // The kernel this boot fetched, handy for notifications ("booted vmlinuz-linux").
    kernel: e.timeline.find((t) => t.stage === 'kernel')?.file,
    timeline: e.timeline.map((t) => ({ ...t, time: iso(t.at) })),
    bootId: e.bootId,
  };
  // Which menu entry (when a generated config chose it) and which ISO (from its kernel) it booted.
  if (e.entry) payload.entry = e.entry;
  if (e.iso) payload.iso = e.iso;
  if (e.stalledStage) payload.stalledStage = e.stalledStage;
  if (e.error) payload.error = { ...e.error, time: iso(e.error.at) };
  return { topic: `boot/${e.stage}`, payload };
}

export = function register(RED: RedApi): void {
  // The runtime's one tracker (shared with the editor's PXE sidebar) starts with the first node type registered.
  installBootView(RED);

  function PxeBootEventsNode(this: RedNode, def: BootEventsDef): void {
    RED.nodes.createNode(this, def);
    const stallMs = Math.max(1, Number(def.stallSeconds) || 120) * 1000;
    const step = Math.min(100, Math.max(1, Number(def.rootfsStep) || 10));
    // The shortest stall time of the deployed nodes applies to the shared tracker (and the sidebar).
    bootMonitor.setStallTime(this.id, stallMs);

    /** Per boot: the last rootfs percent this node reported (its own step). */
    const reported = new Map<string, number>();
    const forward = (e: BootEvent): void => {
      if (e.stage !== 'rootfs') {
        if (e.stage === 'complete' || e.stage === 'stalled') reported.delete(e.bootId);
        this.send(toMessage(e, e.percent));
        return;
      }
      const percent = e.percent ?? 0;
      const last = reported.get(e.bootId);
      const stepped = percent === 100 ? 100 : Math.floor(percent / step) * step;
      if (last !== undefined && stepped <= last) return;
      reported.delete(e.bootId);
      reported.set(e.bootId, stepped);
      if (reported.size > 1000) reported.delete(reported.keys().next().value as string);
      this.send(toMessage(e, stepped));
    };

    let shown = -1;
    const showStatus = (): void => {
      const n = bootMonitor.tracker.activeCount;
      if (n === shown) return;
      shown = n;
      this.status(
        n > 0 ? { fill: 'blue', shape: 'dot', text: RED._('pxe-boot-events.status.booting', { count: n }) } : { fill: 'grey', shape: 'ring', text: RED._('pxe-boot-events.status.waiting') },
      );
    };
    const unsubscribe = bootMonitor.onEvents((events) => {
      for (const e of events) forward(e);
      showStatus();
    });
    // Boots that end without an event of ours (cleared, forgotten) still update the count.
    const timer = setInterval(showStatus, 1000);
    timer.unref();
    showStatus();

    this.on('close', (_removed: boolean, done: () => void) => {
      unsubscribe();
      clearInterval(timer);
      bootMonitor.setStallTime(this.id, undefined);
      done();
    });
  }
  RED.nodes.registerType('pxe-boot-events', PxeBootEventsNode);
};
