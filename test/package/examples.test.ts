import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
// Node-RED's template node renders with this mustache (a dependency of node-red; no types of its own).
const Mustache = createRequire(__filename)('mustache') as { render(template: string, view: unknown): string };
const ours = Object.keys(pkg['node-red'].nodes as Record<string, string>);

function exampleFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? exampleFiles(path.join(dir, e.name)) : e.name.endsWith('.json') ? [path.join(dir, e.name)] : []));
}

function isConfigType(type: string): boolean {
  const html = fs.readFileSync(path.join(root, 'nodes', `${type}.html`), 'utf8');
  return /category:\s*'config'/.test(html);
}

describe('examples', () => {
  const files = exampleFiles(path.join(root, 'examples'));
  const flows = new Map(files.map((f) => [path.relative(root, f), JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>[]]));

  it('include the "Arch PXE" flow', () => {
    assert.ok(flows.has(path.join('examples', 'Arch PXE.json')));
  });

  it('use every non-config node of the package', () => {
    const used = new Set([...flows.values()].flat().map((n) => n.type));
    for (const type of ours.filter((t) => !isConfigType(t))) assert.ok(used.has(type), `${type} appears in no example`);
  });

  for (const [file, flow] of flows) {
    it(`${file} is a well-formed flow`, () => {
      assert.ok(Array.isArray(flow));
      const ids = new Set(flow.map((n) => n.id));
      assert.equal(ids.size, flow.length, 'unique ids');
      for (const n of flow) {
        assert.equal(typeof n.type, 'string');
        if (typeof n.type === 'string' && n.type.startsWith('pxe-')) assert.ok(ours.includes(n.type), `unknown type ${n.type}`);
        for (const out of (n.wires as string[][] | undefined) ?? []) for (const id of out) assert.ok(ids.has(id), `${n.id} wired to missing ${id}`);
        if (n.z !== undefined) assert.ok(ids.has(n.z as string), `${n.id} on a missing tab ${n.z}`);
        for (const key of ['store', 'server']) if (typeof n[key] === 'string' && n[key]) assert.ok(ids.has(n[key] as string), `${n.id}.${key} names a missing config node`);
      }
    });
  }

  // What a user reads in the notification: the paths as they are, not HTML-escaped (mustache's
  // {{x}} writes "/" as "&#x2F;"; a message text wants {{{x}}}).
  for (const [file, flow] of flows) {
    for (const n of flow.filter((x) => x.type === 'template' && x.syntax === 'mustache' && x.output === 'str')) {
      it(`${file}: template "${String(n.name)}" reads as plain text`, () => {
        // The fields of a boot/complete event and of an HTTP download event, with the characters mustache escapes.
        const payload = { mac: '52:54:00:12:34:56', arch: 'bios', kernel: '/arch/boot/x86_64/vmlinuz-linux', time: '2026-12-02T14:00:00.000Z', client: '10.0.0.5', path: '/install-done' };
        const text = Mustache.render(String(n.template), { payload });
        assert.ok(!/&[#a-z0-9]+;/i.test(text), text);
        for (const [key, value] of Object.entries(payload)) if (String(n.template).includes(`payload.${key}`)) assert.ok(text.includes(value), `${key}: ${text}`);
      });
    }
  }
});
