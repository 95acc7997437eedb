/**
 * Every message key the nodes name exists in the en-US locale files: a missing one shows the
 * bare key to the user (RED._ falls back to it). Literal keys are read from the node sources; the
 * keys the shared server lifecycle builds (server-node.ts) are listed per node.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const nodesDir = path.join(__dirname, '../../nodes');
const localeDir = path.join(nodesDir, 'locales/en-US');

function catalog(): Record<string, unknown> {
  const all: Record<string, unknown> = {};
  for (const f of fs.readdirSync(localeDir)) if (f.endsWith('.json')) Object.assign(all, JSON.parse(fs.readFileSync(path.join(localeDir, f), 'utf8')));
  return all;
}

function has(cat: Record<string, unknown>, key: string): boolean {
  let v: unknown = cat;
  for (const part of key.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return typeof v === 'string';
}

describe('locale keys', () => {
  const cat = catalog();

  it("every literal RED._('pxe-…') key of a node file is in its locale file", () => {
    const missing: string[] = [];
    for (const f of fs.readdirSync(nodesDir).filter((n) => /^pxe-.*\.ts$/.test(n))) {
      const src = fs.readFileSync(path.join(nodesDir, f), 'utf8');
      for (const m of src.matchAll(/RED\._\('(pxe-[\w-]+\.[\w.-]+)'/g)) if (!has(cat, m[1]!)) missing.push(`${f}: ${m[1]}`);
    }
    assert.deepEqual(missing, []);
  });

  it('the server nodes have the status and error texts the shared lifecycle shows', () => {
    const bind = ['inUse', 'noPermission', 'badAddress'];
    const missing: string[] = [];
    for (const type of ['pxe-tftp', 'pxe-nbd', 'pxe-nfs', 'pxe-http']) {
      for (const k of ['starting', 'noStore', 'storeError', 'badConfig', 'listenError', ...bind]) if (!has(cat, `${type}.status.${k}`)) missing.push(`${type}.status.${k}`);
      for (const k of ['noStore', 'store', 'listen', ...bind]) if (!has(cat, `${type}.errors.${k}`)) missing.push(`${type}.errors.${k}`);
    }
    for (const k of ['starting', 'error', 'rogue']) if (!has(cat, `pxe-dhcp.status.${k}`)) missing.push(`pxe-dhcp.status.${k}`);
    assert.deepEqual(missing, []);
  });

  it("the DHCP service's warnings (DhcpWarning keys) have texts", () => {
    const src = fs.readFileSync(path.join(nodesDir, 'lib/dhcp/service.ts'), 'utf8');
    const keys = /key: ((?:'\w+'(?: \| )?)+);/.exec(src)![1]!.match(/\w+/g)!;
    assert.ok(keys.length >= 6, keys.join());
    assert.deepEqual(keys.filter((k) => !has(cat, `pxe-dhcp.warn.${k}`)), []);
  });
});
