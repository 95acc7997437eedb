import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clampLimits, negotiate } from '../../nodes/lib/tftp/options';

const limits = clampLimits({ maxBlksize: 1468, maxWindowsize: 64 });
const opt = (name: string, value: string): { name: string; value: string } => ({ name, value });

describe('tftp option negotiation', () => {
  it('without options: RFC 1350 defaults and no OACK', () => {
    assert.deepEqual(negotiate([], limits, 1000), { options: { blksize: 512, windowsize: 1 }, oack: [] });
  });

  it('grants blksize up to the maximum and lowers larger requests (RFC 2348)', () => {
    assert.deepEqual(negotiate([opt('blksize', '1432')], limits, 10).oack, [opt('blksize', '1432')]);
    const big = negotiate([opt('blksize', '65464')], limits, 10);
    assert.equal(big.options.blksize, 1468);
    assert.deepEqual(big.oack, [opt('blksize', '1468')]);
    assert.equal(negotiate([opt('blksize', '99999')], clampLimits({ maxBlksize: 70000 }), 1).options.blksize, 65464);
    assert.equal(negotiate([opt('blksize', '8')], limits, 1).options.blksize, 8);
  });

  it('ignores invalid values instead of failing the request', () => {
    for (const v of ['7', '0', '-1', '1e3', ' 512', '512 ', 'abc', '', '0x200']) {
      const n = negotiate([opt('blksize', v)], limits, 1);
      assert.equal(n.options.blksize, 512, v);
      assert.deepEqual(n.oack, [], v);
    }
    assert.deepEqual(negotiate([opt('timeout', '0')], limits, 1).oack, []);
    assert.deepEqual(negotiate([opt('timeout', '256')], limits, 1).oack, []);
    assert.deepEqual(negotiate([opt('windowsize', '0')], limits, 1).oack, []);
  });

  it('answers tsize with the size when known (RFC 2349), leaves it out when not', () => {
    assert.deepEqual(negotiate([opt('tsize', '0')], limits, 123456).oack, [opt('tsize', '123456')]);
    assert.equal(negotiate([opt('tsize', '0')], limits, 0).options.tsize, 0);
    assert.deepEqual(negotiate([opt('tsize', '0')], limits, undefined).oack, []);
  });

  it('echoes timeout 1-255 exactly (RFC 2349)', () => {
    const n = negotiate([opt('timeout', '6')], limits, 1);
    assert.equal(n.options.timeout, 6);
    assert.deepEqual(n.oack, [opt('timeout', '6')]);
  });

  it('never grants a window over half the 16-bit block space, whatever the configured cap', () => {
    const wide = clampLimits({ maxBlksize: 1468, maxWindowsize: 65535 });
    assert.equal(wide.maxWindowsize, 32767);
    assert.equal(negotiate([opt('windowsize', '65535')], wide, 1).options.windowsize, 32767);
    assert.equal(negotiate([opt('windowsize', '65535')], { maxBlksize: 1468, maxWindowsize: 65535 }, 1).options.windowsize, 32767);
  });

  it('caps windowsize (RFC 7440) and keeps request order in the OACK', () => {
    const n = negotiate([opt('windowsize', '1000'), opt('tsize', '0'), opt('blksize', '1468'), opt('multicast', ''), opt('utimeout', '5000')], limits, 7);
    assert.deepEqual(n.options, { blksize: 1468, windowsize: 64, tsize: 7 });
    assert.deepEqual(n.oack, [opt('windowsize', '64'), opt('tsize', '7'), opt('blksize', '1468')]);
  });

  it('takes the first of repeated options', () => {
    assert.equal(negotiate([opt('blksize', '1024'), opt('blksize', '8')], limits, 1).options.blksize, 1024);
  });

  it('clamps configured limits to the RFC ranges', () => {
    assert.deepEqual(clampLimits({ maxBlksize: 4, maxWindowsize: 0 }), { maxBlksize: 8, maxWindowsize: 1 });
    assert.deepEqual(clampLimits({ maxBlksize: 1e9, maxWindowsize: 1e9 }), { maxBlksize: 65464, maxWindowsize: 32767 });
    assert.deepEqual(clampLimits({}), { maxBlksize: 1468, maxWindowsize: 64 });
    assert.deepEqual(clampLimits({ maxBlksize: NaN }), { maxBlksize: 1468, maxWindowsize: 64 });
  });
});
