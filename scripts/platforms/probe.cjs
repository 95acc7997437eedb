// Run in the emulated root beside a Node-RED started by in-root.sh: waits until Node-RED reports
// every node set of the package loaded without error, then fetches one file from the deployed flow
// over TFTP (RFC 1350 client, octet mode) and HTTP, and compares both with the file on disk.
//   node probe.js <red port> <tftp port> <http port> <file>
/* global require, __dirname, fetch */
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS, run by Debian's Node 18 */
'use strict';
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');
const [redPort, tftpPort, httpPort] = process.argv.slice(2, 5).map(Number);
const file = process.argv[5];
const pkg = require(path.join(__dirname, 'package.json'));
const want = fs.readFileSync(file);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function nodesLoaded() {
  const deadline = Date.now() + 300_000; // Node-RED starts in about a minute under emulation
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${redPort}/nodes`, { headers: { Accept: 'application/json' } });
      if (r.ok) {
        const ours = (await r.json()).filter((s) => s.module === pkg.name);
        const bad = Object.keys(pkg['node-red'].nodes).filter((n) => !ours.some((s) => s.name === n && !s.err));
        if (bad.length) throw new Error(`not loaded: ${bad.map((n) => `${n} ${ours.find((s) => s.name === n)?.err ?? 'missing'}`).join('; ')}`);
        console.log(`Node-RED loaded ${ours.length} node sets of ${pkg.name}`);
        return;
      }
    } catch (err) {
      if (err.message.startsWith('not loaded')) throw err;
    }
    if (Date.now() > deadline) throw new Error('Node-RED did not answer');
    await sleep(1000);
  }
}

function tftpGet(name) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const parts = [];
    let expect = 1;
    const timer = setTimeout(() => (s.close(), reject(new Error('TFTP timeout'))), 60_000);
    s.on('message', (m, rinfo) => {
      const op = m.readUInt16BE(0);
      if (op === 5) return clearTimeout(timer), s.close(), reject(new Error(`TFTP error ${m.readUInt16BE(2)} ${m.subarray(4, -1)}`));
      if (op !== 3) return;
      const block = m.readUInt16BE(2);
      if (block === expect) {
        parts.push(m.subarray(4));
        expect = (expect + 1) & 0xffff;
      }
      const ack = Buffer.alloc(4);
      ack.writeUInt16BE(4, 0);
      ack.writeUInt16BE(block, 2);
      s.send(ack, rinfo.port, rinfo.address);
      if (block !== (expect - 1 & 0xffff) || m.length - 4 >= 512) return;
      clearTimeout(timer);
      setTimeout(() => s.close(), 50); // the last ACK leaves first
      resolve(Buffer.concat(parts));
    });
    s.send(Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${name}\0octet\0`)]), tftpPort, '127.0.0.1');
  });
}

(async () => {
  await nodesLoaded();
  const name = path.basename(file);
  let got;
  for (let i = 0; ; i++) {
    try {
      got = await tftpGet(name);
      break;
    } catch (err) {
      if (i === 5 || !/timeout|ECONNREFUSED/.test(err.message)) throw err;
      await sleep(1000); // the flow may still be starting
    }
  }
  if (!got.equals(want)) throw new Error(`TFTP: ${got.length} bytes, not the file's ${want.length}`);
  console.log(`TFTP: ${name}, ${got.length} bytes, identical`);
  const r = await fetch(`http://127.0.0.1:${httpPort}/${name}`); // listen mode serves the store at /
  const body = Buffer.from(await r.arrayBuffer());
  if (r.status !== 200 || !body.equals(want)) throw new Error(`HTTP: ${r.status}, ${body.length} bytes`);
  console.log(`HTTP: ${name}, ${body.length} bytes, identical`);
})().catch((err) => {
  console.error(`probe failed: ${err.message}`);
  process.exit(1);
});
