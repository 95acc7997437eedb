import { registerInterfacesEndpoint } from './lib/interfaces';
import type { NatBackend } from './lib/nat/backend';
import { NatController, type NatState } from './lib/nat/controller';
import { chooseBackend, createBackend, detectTools, forwardingFor } from './lib/nat/detect';
import { NatError } from './lib/nat/errors';
import { createRunner, type Runner } from './lib/nat/exec';
import { BACKENDS, makePlan, type BackendChoice, type NatSettingsInput } from './lib/nat/plan';
import type { ForwardingControl } from './lib/nat/sysctl';
import type { DoneFn, NodeDef, NodeMessage, RedApi, RedNode, SendFn } from './lib/red';

/** The red status for a failure: a missing CAP_NET_ADMIN names its fix, anything else says "error" (the message has the rest). */
const statusKey = (err: Error): string => (err instanceof NatError && err.code === 'EPERM' ? 'pxe-nat.status.noPermission' : 'pxe-nat.status.error');

interface NatDef extends NodeDef {
  subnet?: string;
  outInterface?: string;
  redirect?: boolean;
  redirectFrom?: number | string;
  redirectTo?: number | string;
  forward?: boolean;
  backend?: string;
}

/** settings.js: `pxeNat: { commandPrefix: ['/usr/bin/sudo', '-n'] }` runs the firewall tools through sudo. */
interface PxeNatSettings {
  commandPrefix?: unknown;
}

function backendChoice(v: unknown): BackendChoice {
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if ((BACKENDS as readonly unknown[]).includes(v)) return v as BackendChoice;
  throw new NatError('EINVAL', `unknown backend "${String(v)}" (auto, ${BACKENDS.join(', ')})`);
}

function runnerFrom(RED: RedApi): Runner {
  const cfg = (RED.settings.pxeNat ?? {}) as PxeNatSettings;
  return createRunner(cfg.commandPrefix as string[] | undefined);
}

export = function register(RED: RedApi): void {
  function PxeNatNode(this: RedNode, def: NatDef): void {
    RED.nodes.createNode(this, def);
    let settings: NatSettingsInput = {
      subnet: def.subnet,
      outInterface: def.outInterface,
      redirect: def.redirect,
      redirectFrom: def.redirectFrom,
      redirectTo: def.redirectTo,
      forward: def.forward,
    };
    let closing = false;

    const fail = (err: Error, msg?: NodeMessage): void => {
      if (closing) return;
      this.status({ fill: 'red', shape: 'ring', text: RED._(statusKey(err)) });
      this.error(err.message, msg);
    };

    let controller: NatController;
    try {
      const runner = runnerFrom(RED);
      const choice = backendChoice(def.backend);
      const forwarding: ForwardingControl = forwardingFor(runner);
      let backend: Promise<NatBackend> | undefined;
      const getBackend = (): Promise<NatBackend> => {
        if (!backend) {
          const p = detectTools(runner).then((tools) => createBackend(chooseBackend(choice, tools), tools, runner));
          backend = p;
          // A missing tool is looked for again next time (it may have been installed since).
          p.catch(() => {
            if (backend === p) backend = undefined;
          });
        }
        return backend;
      };
      controller = new NatController({
        owner: this.id,
        backend: getBackend,
        forwarding,
        namespaceKey: runner.prefix.join('\0'),
        onLeftovers: (removed) => {
          for (const r of removed) {
            const owner = r.owner ?? '?';
            this.warn(
              r.priorForward
                ? RED._('pxe-nat.log.leftoverForward', { owner, value: r.priorForward })
                : RED._('pxe-nat.log.leftover', { owner }),
            );
          }
        },
      });
    } catch (err) {
      fail(err as Error);
      this.on('input', (_msg: NodeMessage, _send: SendFn, done: DoneFn) => done(err as Error));
      return;
    }

    const report = (st: NatState, send: SendFn): void => {
      if (closing) return;
      this.status(
        st.active
          ? { fill: 'green', shape: 'dot', text: RED._('pxe-nat.status.active') }
          : { fill: 'grey', shape: 'ring', text: RED._('pxe-nat.status.inactive') },
      );
      send({ topic: 'nat', payload: st });
    };

    const enable = (next: NatSettingsInput, send: SendFn): Promise<void> => {
      // Validated before anything changes: a bad subnet leaves the rules in force as they are.
      const plan = makePlan(this.id, next);
      settings = next;
      this.status({ fill: 'yellow', shape: 'ring', text: RED._('pxe-nat.status.applying') });
      return controller.enable(plan).then((st) => report(st, send));
    };

    // Applied on deploy.
    Promise.resolve()
      .then(() => enable(settings, (m) => this.send(m)))
      .catch((err: Error) => fail(err));

    this.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      const next: NatSettingsInput = { ...settings };
      let changed = false;
      // msg.subnet / msg.outInterface: from a DHCP node or a function, instead of the typed settings.
      if (msg.subnet !== undefined) {
        next.subnet = msg.subnet;
        changed = true;
      }
      if (msg.outInterface !== undefined) {
        next.outInterface = msg.outInterface;
        changed = true;
      }
      let op: Promise<void>;
      if (msg.payload === false) {
        settings = next;
        op = controller.disable().then((st) => report(st, send));
      } else if (msg.payload === true || changed) {
        op = Promise.resolve().then(() => enable(next, send));
      } else {
        done(new Error('msg.payload must be true (enable) or false (disable), or msg.subnet / msg.outInterface must be set'));
        return;
      }
      op.then(
        () => done(),
        (err: Error) => {
          if (!closing) this.status({ fill: 'red', shape: 'ring', text: RED._(statusKey(err)) });
          done(err);
        },
      );
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      // close(), not disable(): from now on this node's rules count as leftovers if they remain.
      controller.close().then(
        () => done(),
        (err: Error) => {
          this.error(`could not remove the NAT rules: ${err.message}`);
          done();
        },
      );
    });
  }
  RED.nodes.registerType('pxe-nat', PxeNatNode);
  registerInterfacesEndpoint(RED, 'pxe-nat.read');

  // Which backends this machine has, for the editor's backend picker.
  RED.httpAdmin.get('/pxe-nat/backends', RED.auth.needsPermission('pxe-nat.read'), (_req, res) => {
    let runner: Runner;
    try {
      runner = runnerFrom(RED);
    } catch (err) {
      res.json({ ok: false, error: (err as Error).message });
      return;
    }
    detectTools(runner)
      .then((tools) => {
        let auto: string | null = null;
        try {
          auto = chooseBackend('auto', tools);
        } catch {
          auto = null;
        }
        res.json({ ok: true, auto, available: BACKENDS.filter((k) => tools[k] !== null) });
      })
      .catch((err: Error) => res.json({ ok: false, error: err.message }));
  });
};
