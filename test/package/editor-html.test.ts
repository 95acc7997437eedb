/**
 * Each node's editor file as the Flow Library's validator and Node-RED's editor read it: a literal
 * registerType with an inline object, a form template, and help with the sections users expect.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const nodes: Record<string, string> = pkg['node-red'].nodes;

function scriptBlocks(html: string): { attrs: string; body: string }[] {
  return [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].map((m) => ({ attrs: m[1]!, body: m[2]! }));
}

describe('editor .html files', () => {
  for (const [type, jsPath] of Object.entries(nodes)) {
    describe(type, () => {
      const htmlPath = path.join(root, 'nodes', path.basename(jsPath).replace(/\.js$/, '.html'));
      const html = fs.readFileSync(htmlPath, 'utf8');
      const blocks = scriptBlocks(html);
      const def = blocks.find((b) => /type="text\/javascript"/.test(b.attrs));
      const isConfig = /category:\s*'config'/.test(def?.body ?? '');

      it('is named pxe-… and has a TypeScript source and a package entry', () => {
        assert.match(type, /^pxe-[a-z-]+$/);
        assert.ok(fs.existsSync(path.join(root, 'nodes', path.basename(jsPath).replace(/\.js$/, '.ts'))));
        assert.equal(jsPath, `dist/nodes/${type}.js`);
      });

      it('registers a literal type with an inline object the validator can parse', () => {
        assert.ok(def, 'a <script type="text/javascript"> block');
        const m = /RED\.nodes\.registerType\(\s*'([^']+)'\s*,\s*\{/.exec(def.body);
        assert.ok(m, 'registerType with a literal type and an inline object');
        assert.equal(m[1], type);
        assert.match(def.body, /defaults:\s*\{/);
        assert.match(def.body, /category:\s*'[^']+'/);
        // The script must at least be valid JavaScript.
        assert.doesNotThrow(() => new Function('RED', '$', def.body));
      });

      it('has an edit form and help with the usual sections', () => {
        assert.ok(blocks.some((b) => b.attrs.includes(`data-template-name="${type}"`)), 'edit template');
        const help = blocks.find((b) => b.attrs.includes(`data-help-name="${type}"`));
        assert.ok(help, 'help block');
        assert.match(help.body.trim(), /^<p>[^<]{10,}/, 'first element is a one-line summary <p>');
        const sections = isConfig ? ['Details', 'References'] : ['Inputs', 'Outputs', 'Details', 'References'];
        for (const s of sections) assert.match(help.body, new RegExp(`<h3>${s}</h3>`), `help section ${s}`);
      });

      it("looks its texts up through the node (node._), not RED._, which shows a package's bare keys", () => {
        assert.deepEqual([...html.matchAll(/RED\._\('(pxe-[^']*)'/g)].map((m) => m[1]), []);
      });

      it('uses an icon that exists and has locale messages', () => {
        const icon = /icon:\s*'([^']+)'/.exec(def!.body)?.[1];
        assert.ok(icon, 'icon set');
        if (!icon.includes('/')) assert.ok(fs.existsSync(path.join(root, 'icons', icon)), `icons/${icon}`);
        const locale = path.join(root, 'nodes', 'locales', 'en-US', `${type}.json`);
        assert.ok(JSON.parse(fs.readFileSync(locale, 'utf8'))[type], `${type} key in ${locale}`);
      });
    });
  }
});
