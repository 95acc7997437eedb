import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClientInfo } from '../../nodes/lib/dhcp/client';
import { decode, encode, OPTIONS_OFFSET, type DhcpPacket } from '../../nodes/lib/dhcp/codec';
import { makeEvent } from '../../nodes/lib/dhcp/events';
import { MessageType as T, u16 } from '../../nodes/lib/dhcp/options';
import { baseReply, finishReply, type HandleResult, type Responder } from '../../nodes/lib/dhcp/reply';
import { DhcpMessageLoop } from '../../nodes/lib/dhcp/message-loop';
import { FakeTransport, request } from './dhcp-helpers';

const SERVER = '10.40.0.1';

/** Answers every request with an OFFER carrying `count` extra options of `len` bytes each. */
class BulkyResponder implements Responder {
  lastReply: DhcpPacket | null = null;
  constructor(
    private readonly count: number,
    private readonly len = 50,
    private readonly file = '',
  ) {}
  async handle(req: DhcpPacket, c: ClientInfo): Promise<HandleResult> {
    const reply = baseReply(req, T.OFFER, SERVER, c.isPxe);
    reply.yiaddr = '10.40.0.100';
    reply.file = this.file;
    for (let i = 0; i < this.count; i++) reply.options.set(224 + i, Buffer.alloc(this.len, 0x61 + i));
    finishReply(req, reply);
    this.lastReply = reply;
    return { events: [makeEvent('offer', c, req.xid, req.giaddr, { ip: reply.yiaddr })], reply, replyType: T.OFFER };
  }
}

/** A DISCOVER, with option 57 when `maxSize` is given. */
function discover(maxSize?: number, vendorClass?: string): Buffer {
  const p = decode(request({ type: T.DISCOVER, vendorClass }));
  if (maxSize !== undefined) p.options.set(57, u16(maxSize));
  return encode(p);
}

async function exchange(responder: BulkyResponder, req: Buffer): Promise<Buffer> {
  const t = new FakeTransport();
  const server = new DhcpMessageLoop(t, responder);
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  t.deliver({ buf: req });
  const [sent] = await t.waitSent(1);
  assert.deepEqual(errors, []);
  return sent!.raw;
}

describe('DHCP server reply size', () => {
  it('keeps replies to a client without option 57 within 576-byte datagrams, overloading file/sname', async () => {
    const r = new BulkyResponder(7); // 7 × 52 bytes of options: too many for the 312-byte options field
    const raw = await exchange(r, discover());
    assert.ok(raw.length + 28 <= 576, `${raw.length + 28}-byte datagram`);
    assert.deepEqual([raw[OPTIONS_OFFSET], raw[OPTIONS_OFFSET + 1]], [52, 1], 'option overload used');
    // The client reads every option back.
    const got = decode(raw);
    for (const [code, v] of r.lastReply!.options) assert.deepEqual(got.options.get(code), v, `option ${code}`);
  });

  it('leaves replies to clients that send option 57 (PXE ROMs, iPXE) as they were', async () => {
    for (const max of [1260, 1472, 1500]) {
      const r = new BulkyResponder(7, 50, 'pxelinux.0');
      const raw = await exchange(r, discover(max, 'PXEClient:Arch:00000:UNDI:002001'));
      assert.deepEqual(raw, encode(r.lastReply!, { maxMessageSize: max }));
      assert.notEqual(raw[OPTIONS_OFFSET], 52, 'no overload needed');
      assert.equal(decode(raw).file, 'pxelinux.0');
    }
  });

  it('sends a reply that fits 576 bytes unchanged', async () => {
    const r = new BulkyResponder(2, 50, 'pxelinux.0');
    const raw = await exchange(r, discover());
    assert.deepEqual(raw, encode(r.lastReply!, { maxMessageSize: 1500 }));
    assert.notEqual(raw[OPTIONS_OFFSET], 52, 'no overload');
  });

  it('still answers when a reply cannot fit 576 bytes even overloaded (up to 1500)', async () => {
    const r = new BulkyResponder(12);
    const raw = await exchange(r, discover());
    assert.ok(raw.length + 28 > 576 && raw.length + 28 <= 1500, `${raw.length + 28}-byte datagram`);
    assert.equal(decode(raw).options.size, r.lastReply!.options.size);
  });
});
