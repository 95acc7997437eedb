import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BOOTREQUEST,
  clientMac,
  createPacket,
  decode,
  DhcpDecodeError,
  DhcpEncodeError,
  encode,
  FILE_OFFSET,
  MAGIC_COOKIE,
  MIN_MESSAGE_SIZE,
  OPTIONS_OFFSET,
  SNAME_OFFSET,
} from '../../nodes/lib/dhcp/codec';
import {
  archFromVendorClass,
  encodeExtraOption,
  formatUuid,
  getClientArch,
  getClientId,
  getClientNdi,
  getClientUuid,
  getHostname,
  getIpxeOptions,
  getLeaseTime,
  getMaxMessageSize,
  getMessageType,
  getParameterRequestList,
  getPxeVendorOptions,
  getRelayAgentInfo,
  getRequestedIp,
  getServerId,
  getUserClasses,
  getVendorClass,
  Opt,
  parseSubOptions,
  pxeVendorOption,
  raspberryPiVendorOption,
} from '../../nodes/lib/dhcp/options';

/** A DHCPDISCOVER laid out byte by byte as a PXE ROM sends it (not built with our encoder). */
function handMadePxeDiscover(): Buffer {
  const b = Buffer.alloc(548);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // ethernet
  b[2] = 6;
  b.writeUInt32BE(0xdeadbeef, 4);
  b.writeUInt16BE(4, 8); // secs
  b.writeUInt16BE(0x8000, 10); // broadcast flag
  Buffer.from('525400123456', 'hex').copy(b, 28);
  b.writeUInt32BE(MAGIC_COOKIE, 236);
  const opts = [
    [53, 1, 1],
    [57, 2, 0x04, 0xec], // 1260
    [55, 9, 1, 2, 3, 5, 6, 11, 12, 13, 15],
    [55, 2, 66, 67], // split instance: must be concatenated (RFC 3396)
    [97, 17, 0, ...Array.from({ length: 16 }, (_, i) => i)],
    [94, 3, 1, 2, 1],
    [93, 2, 0, 7],
    [60, 32, ...Buffer.from('PXEClient:Arch:00007:UNDI:003016')],
    [255],
  ].flat();
  Buffer.from(opts).copy(b, 240);
  return b;
}

describe('DHCP codec', () => {
  it('decodes a byte-built PXE DISCOVER', () => {
    const p = decode(handMadePxeDiscover());
    assert.equal(p.op, BOOTREQUEST);
    assert.equal(p.xid, 0xdeadbeef);
    assert.equal(p.flags, 0x8000);
    assert.equal(p.secs, 4);
    assert.equal(clientMac(p), '52:54:00:12:34:56');
    assert.equal(getMessageType(p.options), 1);
    assert.equal(getMaxMessageSize(p.options), 1260);
    assert.deepEqual(getParameterRequestList(p.options), [1, 2, 3, 5, 6, 11, 12, 13, 15, 66, 67]);
    assert.deepEqual(getClientArch(p.options), [7]);
    assert.deepEqual(getClientNdi(p.options), { type: 1, major: 2, minor: 1 });
    assert.equal(formatUuid(getClientUuid(p.options)!), '00010203-0405-0607-0809-0a0b0c0d0e0f');
    assert.equal(getVendorClass(p.options), 'PXEClient:Arch:00007:UNDI:003016');
    assert.equal(archFromVendorClass(getVendorClass(p.options)), 7);
    assert.equal(p.file, '');
    assert.equal(p.sname, '');
  });

  it('round-trips every header field and option', () => {
    const p = createPacket({
      op: 2,
      htype: 1,
      hlen: 6,
      hops: 3,
      xid: 0x01020304,
      secs: 65535,
      flags: 0x8000,
      ciaddr: '10.0.0.9',
      yiaddr: '10.0.0.10',
      siaddr: '10.0.0.1',
      giaddr: '10.1.0.1',
      chaddr: Buffer.concat([Buffer.from('b827eb010203', 'hex'), Buffer.alloc(10)]),
      sname: 'bootsrv',
      file: 'arch/boot/syslinux/lpxelinux.0',
    });
    p.options.set(53, Buffer.from([5]));
    p.options.set(54, Buffer.from([10, 0, 0, 1]));
    p.options.set(51, Buffer.from([0, 0, 0x0e, 0x10]));
    p.options.set(209, Buffer.from('boot/syslinux/archiso.cfg'));
    p.options.set(210, Buffer.from('/arch/'));
    p.options.set(82, Buffer.from([1, 3, 0x41, 0x42, 0x43, 2, 1, 9]));
    const buf = encode(p);
    assert.ok(buf.length >= MIN_MESSAGE_SIZE);
    const q = decode(buf);
    assert.deepEqual({ ...q, options: [...q.options] }, { ...p, options: [...p.options] });
    assert.equal(getLeaseTime(q.options), 3600);
    assert.equal(getServerId(q.options), '10.0.0.1');
    assert.deepEqual(getRelayAgentInfo(q.options), Buffer.from([1, 3, 0x41, 0x42, 0x43, 2, 1, 9]));
    // 53 and 54 are placed first, as some clients assume.
    assert.deepEqual([...buf.subarray(OPTIONS_OFFSET, OPTIONS_OFFSET + 3)], [53, 1, 5]);
    assert.equal(buf[OPTIONS_OFFSET + 3], 54);
  });

  it('pads short messages to the 300-byte BOOTP minimum with an END option', () => {
    const p = createPacket();
    p.options.set(53, Buffer.from([2]));
    const buf = encode(p);
    assert.equal(buf.length, MIN_MESSAGE_SIZE);
    assert.equal(buf[OPTIONS_OFFSET + 3], 255);
    assert.ok(buf.subarray(OPTIONS_OFFSET + 4).every((x) => x === 0));
  });

  it('splits long options into consecutive instances and concatenates them back (RFC 3396)', () => {
    const long = Buffer.alloc(700, 0);
    for (let i = 0; i < long.length; i++) long[i] = i & 0xff;
    const p = createPacket();
    p.options.set(53, Buffer.from([5]));
    p.options.set(224, long);
    const buf = encode(p, { maxMessageSize: 1500 });
    // 700 bytes → 255 + 255 + 190 in three instances of option 224.
    let i = OPTIONS_OFFSET + 3;
    const lens: number[] = [];
    while (buf[i] === 224) {
      lens.push(buf[i + 1]!);
      i += 2 + buf[i + 1]!;
    }
    assert.deepEqual(lens, [255, 255, 190]);
    assert.deepEqual(decode(buf).options.get(224), long);
  });

  it('overloads file and sname only when the options do not fit (option 52)', () => {
    const p = createPacket();
    p.options.set(53, Buffer.from([5]));
    // 576-byte datagram → 308 bytes of options; these need more than that.
    for (let c = 200; c < 206; c++) p.options.set(c, Buffer.alloc(60, c));
    const buf = encode(p);
    assert.ok(buf.length <= 548, String(buf.length));
    const overload = decode(buf);
    assert.equal(overload.file, '');
    assert.equal(overload.sname, '');
    for (let c = 200; c < 206; c++) assert.deepEqual(overload.options.get(c), Buffer.alloc(60, c), `option ${c}`);
    assert.ok(buf.subarray(OPTIONS_OFFSET).includes(Buffer.from([52, 1])));

    // With a boot file set the file field is not available: too much → a clear error.
    p.file = 'pxelinux.0';
    assert.throws(() => encode(p), DhcpEncodeError);
    // A larger client limit (option 57) avoids overloading altogether.
    const big = decode(encode(p, { maxMessageSize: 1500 }));
    assert.equal(big.file, 'pxelinux.0');
  });

  it('decodes a byte-built overloaded packet, concatenating options, file, sname in order', () => {
    const b = Buffer.alloc(548);
    b[0] = 2;
    b[1] = 1;
    b[2] = 6;
    b.writeUInt32BE(MAGIC_COOKIE, 236);
    Buffer.from([53, 1, 5, 52, 1, 3, 67, 3, 0x61, 0x62, 0x63, 255]).copy(b, OPTIONS_OFFSET);
    Buffer.from([67, 2, 0x64, 0x65, 52, 1, 1, 255]).copy(b, FILE_OFFSET); // a nested 52 is ignored
    Buffer.from([67, 1, 0x66, 12, 2, 0x68, 0x69, 255]).copy(b, SNAME_OFFSET);
    const p = decode(b);
    assert.equal(p.options.get(Opt.BOOTFILE_NAME)!.toString(), 'abcdef');
    assert.equal(getHostname(p.options), 'hi');
    assert.equal(p.options.has(52), false);
  });

  it('reads iPXE user class, option 175, client id and PXE vendor sub-options', () => {
    const p = createPacket();
    p.options.set(77, Buffer.from('iPXE'));
    p.options.set(175, Buffer.from([19, 1, 1, 21, 1, 1, 255]));
    p.options.set(61, Buffer.from('01525400123456', 'hex'));
    p.options.set(43, pxeVendorOption());
    assert.deepEqual(getUserClasses(p.options), ['iPXE']);
    assert.deepEqual([...getIpxeOptions(p.options)!.keys()], [19, 21]);
    assert.equal(getClientId(p.options), '01525400123456');
    assert.equal(getPxeVendorOptions(p.options)!.discoveryControl, 8);
    // RFC 3004 form: length-prefixed list.
    p.options.set(77, Buffer.from([4, ...Buffer.from('iPXE'), 3, ...Buffer.from('foo')]));
    assert.deepEqual(getUserClasses(p.options), ['iPXE', 'foo']);
  });

  it('encodes the Raspberry Pi option 43 exactly like dnsmasq pxe-service', () => {
    assert.equal(
      raspberryPiVendorOption().toString('hex'),
      '060103' + '0a0400505845' + '0914000011' + Buffer.from('Raspberry Pi Boot').toString('hex') + 'ff',
    );
    const subs = parseSubOptions(raspberryPiVendorOption())!;
    assert.ok(subs.get(9)!.toString().includes('Raspberry Pi Boot'));
  });

  it('encodes typed extra options and refuses bad ones', () => {
    assert.deepEqual(encodeExtraOption({ code: 3, kind: 'ips', value: '10.0.0.1, 10.0.0.2' }), Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]));
    assert.deepEqual(encodeExtraOption({ code: 211, kind: 'u32', value: '30' }), Buffer.from([0, 0, 0, 30]));
    assert.deepEqual(encodeExtraOption({ code: 250, kind: 'hex', value: 'de:ad' }), Buffer.from([0xde, 0xad]));
    assert.throws(() => encodeExtraOption({ code: 53, kind: 'u8', value: '1' }));
    assert.throws(() => encodeExtraOption({ code: 23, kind: 'u8', value: '256' }));
    assert.throws(() => encodeExtraOption({ code: 3, kind: 'ip', value: '10.0.0' }));
    assert.throws(() => encodeExtraOption({ code: 250, kind: 'hex', value: 'xyz' }));
  });

  it('rejects truncated headers, lengths past the end and bad overload values', () => {
    const good = handMadePxeDiscover();
    assert.throws(() => decode(good.subarray(0, 100)), DhcpDecodeError);
    const badLen = Buffer.from(good.subarray(0, OPTIONS_OFFSET + 50));
    badLen[OPTIONS_OFFSET + 1] = 200; // option 53 claims 200 bytes
    assert.throws(() => decode(badLen), /runs past the end/);
    const noLen = Buffer.from(good.subarray(0, OPTIONS_OFFSET + 1));
    noLen[OPTIONS_OFFSET] = 12;
    assert.throws(() => decode(noLen), /no length byte/);
    const hlen = Buffer.from(good);
    hlen[2] = 17;
    assert.throws(() => decode(hlen), DhcpDecodeError);
    const ov = Buffer.from(good);
    Buffer.from([53, 1, 1, 52, 1, 9, 255]).copy(ov, OPTIONS_OFFSET);
    assert.throws(() => decode(ov), /overload/);
    // A message cut inside the options (no END) still decodes up to the cut.
    const cut = decode(good.subarray(0, OPTIONS_OFFSET + 3));
    assert.equal(getMessageType(cut.options), 1);
    // No magic cookie: BOOTP, no options.
    const bootp = Buffer.from(good);
    bootp.writeUInt32BE(0, 236);
    assert.equal(decode(bootp).options.size, 0);
  });

  it('survives an overload loop and a huge parameter request list', () => {
    const b = Buffer.alloc(1400);
    b[0] = 1;
    b[2] = 6;
    b.writeUInt32BE(MAGIC_COOKIE, 236);
    let o = OPTIONS_OFFSET;
    for (const x of [53, 1, 1, 52, 1, 3]) b[o++] = x;
    for (let k = 0; k < 4; k++) {
      b[o++] = 55;
      b[o++] = 255;
      for (let j = 0; j < 255; j++) b[o++] = j;
    }
    b[o++] = 255;
    Buffer.from([52, 1, 2, 255]).copy(b, FILE_OFFSET);
    Buffer.from([52, 1, 1, 255]).copy(b, SNAME_OFFSET);
    const p = decode(b);
    assert.equal(p.options.get(55)!.length, 1020);
    assert.equal(getParameterRequestList(p.options).length, 255);
  });

  it('getters read malformed values as absent instead of throwing', () => {
    const p = createPacket();
    p.options.set(50, Buffer.from([1, 2, 3]));
    p.options.set(93, Buffer.from([1]));
    p.options.set(97, Buffer.from([1, 2]));
    p.options.set(43, Buffer.from([6, 5, 1]));
    p.options.set(57, Buffer.from([0, 10]));
    assert.equal(getRequestedIp(p.options), null);
    assert.deepEqual(getClientArch(p.options), []);
    assert.equal(getClientUuid(p.options), null);
    assert.equal(getPxeVendorOptions(p.options), null);
    assert.equal(getMaxMessageSize(p.options), 576);
  });

  it('bounded fuzz: random and mutated messages never throw anything but DhcpDecodeError', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const base = handMadePxeDiscover();
    const start = Date.now();
    for (let k = 0; k < 20000 && Date.now() - start < 5000; k++) {
      let b: Buffer;
      if (k % 3 === 0) {
        b = Buffer.alloc(rnd(700));
        for (let i = 0; i < b.length; i++) b[i] = rnd(256);
        if (b.length > 240) b.writeUInt32BE(MAGIC_COOKIE, 236);
      } else {
        b = Buffer.from(base.subarray(0, 200 + rnd(base.length - 200)));
        for (let m = 0; m < 1 + rnd(8); m++) b[236 + rnd(b.length - 236)] = rnd(256);
      }
      try {
        const p = decode(b);
        // Everything decoded must be readable by the accessors and re-encodable as a reply.
        getParameterRequestList(p.options);
        getUserClasses(p.options);
        getClientArch(p.options);
        getPxeVendorOptions(p.options);
        getIpxeOptions(p.options);
        getHostname(p.options);
        p.file = '';
        p.sname = '';
        for (const c of [0, 52, 255]) p.options.delete(c);
        try {
          decode(encode(p, { maxMessageSize: 65535 }));
        } catch (e) {
          if (!(e instanceof DhcpEncodeError)) throw e;
        }
      } catch (e) {
        if (!(e instanceof DhcpDecodeError)) throw e;
      }
    }
  });
});
