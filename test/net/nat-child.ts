/**
 * Runs a NAT controller inside the namespace it is started in (by the lab, with ns.spawn): it
 * enables the plan given as JSON in argv[2] (argv[3]: the namespace's name), prints {"state":…}, and on SIGTERM disables it,
 * prints {"closed":…} and exits. Errors print {"error":{code,message}} and exit 2. It refuses to
 * run in the machine's own network namespace.
 */
import { statSync } from 'node:fs';
import { NatController } from '../../nodes/lib/nat/controller';
import { chooseBackend, createBackend, detectTools, forwardingFor } from '../../nodes/lib/nat/detect';
import { createRunner } from '../../nodes/lib/nat/exec';
import { makePlan, type BackendChoice, type NatSettingsInput } from '../../nodes/lib/nat/plan';

function print(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// argv[3] names the lab namespace this must be running in: checked, so that a mistake in a test
// can never change the machine's own firewall.
function inNamespace(name: string | undefined): boolean {
  if (!name || !/^pxelab-/.test(name)) return false;
  try {
    return statSync(`/run/netns/${name}`).ino === statSync('/proc/self/ns/net').ino;
  } catch {
    return false;
  }
}
if (!inNamespace(process.argv[3])) {
  print({ error: { code: 'EUNSAFE', message: 'nat-child runs only inside the lab namespace named in argv[3]' } });
  process.exit(3);
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as NatSettingsInput & { owner: string; backend: BackendChoice };
const runner = createRunner();
const controller = new NatController({
  owner: cfg.owner,
  backend: async () => {
    const tools = await detectTools(runner);
    return createBackend(chooseBackend(cfg.backend, tools), tools, runner);
  },
  forwarding: forwardingFor(runner),
  namespaceKey: 'self',
});

const fail = (err: Error & { code?: string }): never => {
  print({ error: { code: err.code ?? 'ERR', message: err.message } });
  process.exit(2);
};

Promise.resolve()
  .then(() => controller.enable(makePlan(cfg.owner, cfg)))
  .then((state) => {
    print({ state });
    process.once('SIGTERM', () => {
      controller.disable().then((closed) => {
        print({ closed });
        process.exit(0);
      }, fail);
    });
  }, fail);
// Stay alive until signalled.
setInterval(() => undefined, 60_000);
