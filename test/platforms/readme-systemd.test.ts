/**
 * The README's `systemctl edit nodered` drop-in, as a Pi user pastes it: valid systemd syntax
 * (one [Service] section, known keys, capability names the kernel has; and, where systemd-analyze
 * is installed, systemd itself loads it and keeps every capability), granting exactly the
 * capabilities the nodes' messages ask for — and every node's red status for a missing
 * capability names that capability and points to the README.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseUnit } from './systemd-unit';

const root = path.resolve(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const locales = path.join(root, 'nodes', 'locales', 'en-US');

/** Linux's capability names (include/uapi/linux/capability.h, 6.x); the header when installed, else this list. */
const KNOWN_CAPS = new Set(
  ('CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE ' +
    'NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN ' +
    'SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE ' +
    'MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE')
    .split(' ')
    .map((c) => `CAP_${c}`),
);
const header = '/usr/include/linux/capability.h';
if (fs.existsSync(header)) for (const m of fs.readFileSync(header, 'utf8').matchAll(/^#define (CAP_[A-Z_]+)\s+\d+\s*$/gm)) KNOWN_CAPS.add(m[1]!);

/** Keys a [Service] drop-in may set for capabilities (systemd.exec(5)). */
const SERVICE_KEYS = new Set(['AmbientCapabilities', 'CapabilityBoundingSet']);

/** The ```ini block after "systemctl edit nodered" in the README (the Privileges section the Pi section points to). */
function dropIn(): string {
  const at = readme.indexOf('systemctl edit nodered');
  assert.ok(at >= 0, 'the README tells the user to run systemctl edit nodered');
  const m = /```ini\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, 'an ini block follows it');
  // The block sits in a list item: its lines are indented like the item's text.
  return m[1]!.replace(/^[ \t]+/gm, '');
}

/** Capability lists as systemd reads them: space-separated, repeated assignments add up ("~" inverts: not used here). */
function caps(values: string[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const v of values ?? []) {
    assert.ok(!v.startsWith('~'), 'an inverted list would take capabilities away');
    for (const c of v.split(/\s+/).filter(Boolean)) {
      assert.ok(KNOWN_CAPS.has(c), `${c} is not a Linux capability`);
      out.add(c);
    }
  }
  return out;
}

/** Every CAP_* the nodes' user-facing texts (locale files) and the hints in their libraries ask for. */
function capsTheNodesAskFor(): Set<string> {
  const texts: string[] = fs.readdirSync(locales).filter((f) => f.endsWith('.json')).map((f) => fs.readFileSync(path.join(locales, f), 'utf8'));
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) texts.push(...[...fs.readFileSync(p, 'utf8').matchAll(/(['"`])(?:(?!\1)[^\\\n]|\\.)*\1/g)].map((m) => m[0]));
    }
  };
  walk(path.join(root, 'nodes', 'lib'));
  return new Set(texts.flatMap((t) => [...t.matchAll(/\bCAP_[A-Z_]+\b/g)].map((m) => m[0])));
}

describe("README's systemctl edit drop-in", () => {
  const text = dropIn();
  const unit = parseUnit(text);
  const service = unit.get('Service');

  it('is one [Service] section of capability keys, with capabilities the kernel has', () => {
    assert.deepEqual([...unit.keys()], ['Service']);
    assert.ok(service);
    for (const key of service.keys()) assert.ok(SERVICE_KEYS.has(key), `${key} is not a capability setting of [Service]`);
    assert.ok(caps(service.get('AmbientCapabilities')).size > 0, 'AmbientCapabilities is set');
  });

  it('grants exactly what the nodes ask for, within its bounding set', () => {
    const ambient = caps(service!.get('AmbientCapabilities'));
    const asked = capsTheNodesAskFor();
    assert.deepEqual([...ambient].sort(), [...asked].sort(), 'the drop-in grants the capabilities the nodes name, and no other');
    // Ambient capabilities outside the bounding set are dropped silently.
    if (service!.has('CapabilityBoundingSet')) {
      const bounding = caps(service!.get('CapabilityBoundingSet'));
      for (const c of ambient) assert.ok(bounding.has(c), `${c} is ambient but not in CapabilityBoundingSet`);
    }
  });

  it('is loaded by systemd itself with every capability kept', (t) => {
    const sa = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));
    if (!sa) return t.skip('systemd-analyze is not installed');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dropin-'));
    try {
      // The unit as Node-RED's installer writes it, in short; the README's text as its drop-in.
      fs.writeFileSync(path.join(dir, 'nodered.service'), '[Unit]\nDescription=Node-RED\n[Service]\nType=simple\nUser=pi\nExecStart=/bin/true\n');
      fs.mkdirSync(path.join(dir, 'nodered.service.d'));
      fs.writeFileSync(path.join(dir, 'nodered.service.d', 'override.conf'), text);
      const r = spawnSync(sa, ['verify', './nodered.service'], { cwd: dir, encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'debug', SYSTEMD_PAGER: '' }, timeout: 60_000 });
      const out = `${r.stdout}\n${r.stderr}`;
      assert.match(out, /DropIn Path: .*override\.conf/, `systemd did not load the drop-in:\n${out.slice(-2000)}`);
      const complaints = out.split('\n').filter((l) => l.includes('override.conf:'));
      assert.deepEqual(complaints, [], 'systemd complains about the drop-in');
      const loaded = /^\s*AmbientCapabilities: (.*)$/m.exec(out);
      assert.ok(loaded, 'systemd reports the ambient set');
      assert.deepEqual(loaded[1]!.trim().split(/\s+/).sort(), [...caps(service!.get('AmbientCapabilities'))].map((c) => c.toLowerCase()).sort());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('red status for a missing capability', () => {
  const status = (node: string): Record<string, string> => (JSON.parse(fs.readFileSync(path.join(locales, `${node}.json`), 'utf8')) as Record<string, { status: Record<string, string> }>)[node]!.status;
  const cases: [string, string][] = [
    ['pxe-dhcp', 'CAP_NET_BIND_SERVICE'],
    ['pxe-tftp', 'CAP_NET_BIND_SERVICE'],
    ['pxe-http', 'CAP_NET_BIND_SERVICE'],
    ['pxe-nfs', 'CAP_NET_BIND_SERVICE'],
    ['pxe-nbd', 'CAP_NET_BIND_SERVICE'],
    ['pxe-nat', 'CAP_NET_ADMIN'],
  ];
  for (const [node, cap] of cases) {
    it(`${node} names ${cap} and the README section`, () => {
      const text = status(node).noPermission;
      assert.ok(text, `${node} has a noPermission status`);
      assert.match(text, new RegExp(`give Node-RED ${cap}\\b`));
      assert.match(text, /\(see README, Raspberry Pi\)/);
    });
  }
  it('the README section the statuses point to exists and leads to the drop-in', () => {
    const pi = readme.indexOf('## On a Raspberry Pi');
    assert.ok(pi >= 0);
    assert.match(readme.slice(pi, readme.indexOf('\n## ', pi + 5)), /systemctl edit nodered/);
  });
});
