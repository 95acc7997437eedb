/**
 * Runs our DHCP service inside a lab namespace for the network tests and the bench.
 * argv[2]: JSON DhcpServiceConfig. Prints JSON lines: {"listening":…} once serving, {"event":…}
 * per DHCP event (unless config.quiet), {"warn":…}, {"error":…}; reads JSON commands on stdin:
 * {"op":"leases"} → {"leases":[…]}, {"op":"stats"} → {"stats":…}, {"op":"close"} → closes, exits 0.
 */
import * as readline from 'node:readline';
import { DhcpService, type DhcpServiceConfig } from '../../nodes/lib/dhcp/service';

const cfg = JSON.parse(process.argv[2] ?? '{}') as DhcpServiceConfig & { quiet?: boolean };
const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

DhcpService.start(cfg).then(
  (svc) => {
    for (const w of svc.startupWarnings) out({ warn: w.text });
    svc.on('event', (e, route) => {
      if (!cfg.quiet) out({ event: e, route });
    });
    svc.on('warn', (w) => out({ warn: w.text }));
    svc.on('error', (e) => out({ error: e.message }));
    out({ listening: svc.address, isolation: svc.sockets.isolation });
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      let cmd: { op?: string };
      try {
        cmd = JSON.parse(line) as { op?: string };
      } catch {
        return;
      }
      if (cmd.op === 'leases') out({ leases: svc.leases() });
      else if (cmd.op === 'stats') out({ stats: svc.loop.stats, filtered: svc.sockets.filtered });
      else if (cmd.op === 'close') {
        svc.close().then(
          () => {
            out({ closed: true });
            process.exit(0);
          },
          (e: Error) => {
            out({ error: e.message });
            process.exit(1);
          },
        );
      }
    });
    process.on('SIGTERM', () => {
      void svc.close().then(() => process.exit(0));
    });
  },
  (e: Error) => {
    out({ fatal: e.message, name: e.name });
    process.exit(2);
  },
);
