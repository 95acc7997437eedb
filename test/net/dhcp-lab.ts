/** Helpers for the DHCP network tests: our server as a child process in a namespace, scripted clients. */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { Netns } from '../lab/netns';
import type { DhcpServiceConfig } from '../../nodes/lib/dhcp/service';

const ROOT = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON lines from the child
export type Line = Record<string, any>;

/** A child process in a namespace that talks in JSON lines: our DHCP server or the pxe-dhcp node. */
export class ServerProc {
  readonly lines: Line[] = [];
  private waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  stderr = '';

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const p of parts) {
        if (!p.trim()) continue;
        let l: Line;
        try {
          l = JSON.parse(p) as Line;
        } catch {
          continue;
        }
        this.lines.push(l);
        for (const w of this.waiters.slice()) {
          if (w.pred(l)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(l);
          }
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  static start(ns: Netns, cfg: DhcpServiceConfig & { quiet?: boolean }): ServerProc {
    const child = ns.spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/net/dhcp-child.ts'), JSON.stringify(cfg)], { cwd: ROOT });
    return new ServerProc(child);
  }

  /** The first line (already seen or future) matching `pred`. */
  waitFor(pred: (l: Line) => boolean, timeoutMs = 20000, fromIndex = 0): Promise<Line> {
    const seen = this.lines.slice(fromIndex).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting; lines: ${JSON.stringify(this.lines.slice(-5))} stderr: ${this.stderr.slice(-500)}`)), timeoutMs);
      const w = {
        pred,
        resolve: (l: Line) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      this.waiters.push(w);
      this.child.once('exit', (code) => {
        if (this.waiters.includes(w)) {
          clearTimeout(t);
          reject(new Error(`server exited (${code}): ${JSON.stringify(this.lines.slice(-3))} ${this.stderr.slice(-500)}`));
        }
      });
    });
  }

  async ready(): Promise<Line> {
    return this.waitFor((l) => 'listening' in l || 'fatal' in l);
  }

  events(type?: string): Line[] {
    return this.lines.filter((l) => l.event && (!type || l.event.type === type)).map((l) => l.event as Line);
  }

  /** Writes one JSON line to the child. */
  send(m: unknown): void {
    this.child.stdin!.write(JSON.stringify(m) + '\n');
  }

  command(op: string, key: string): Promise<Line> {
    const from = this.lines.length;
    this.send({ op });
    return this.waitFor((l) => key in l, 10000, from);
  }

  /** Asks the child to close cleanly (leases flushed) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.send({ op: 'close' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(t);
  }
}

/** Runs the scripted client in `ns`; returns its JSON lines. */
export async function scriptClient(ns: Netns, args: Record<string, unknown>, timeoutMs = 20000): Promise<Line[]> {
  const r = await ns.run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/net/dhcp-script-client.ts'), JSON.stringify(args)], { timeoutMs, cwd: ROOT });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        return { raw: l };
      }
    });
  if (r.code !== 0) throw new Error(`script client failed (${r.code}): ${r.stderr.slice(-800)}`);
  return lines;
}

export const replies = (lines: Line[]): Line[] => lines.filter((l) => l.reply).map((l) => l.reply as Line);
