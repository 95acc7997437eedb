import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Installed, NatBackend } from '../../nodes/lib/nat/backend';
import { NatController } from '../../nodes/lib/nat/controller';
import { NatError } from '../../nodes/lib/nat/errors';
import { makePlan, type ForwardValue, type NatPlan } from '../../nodes/lib/nat/plan';
import type { ForwardingControl } from '../../nodes/lib/nat/sysctl';

/** An in-memory firewall: one entry per owner, as the real backends keep one table/chain per owner. */
class FakeBackend implements NatBackend {
  readonly kind = 'nftables' as const;
  readonly tables = new Map<string, { plan: NatPlan; prior: ForwardValue | null }>();
  failApply = false;
  calls: string[] = [];
  async inspect(owner: string): Promise<Installed | null> {
    const t = this.tables.get(owner);
    return t ? { rules: [`masquerade ${t.plan.subnet.cidr}`], priorForward: t.prior } : null;
  }
  async apply(plan: NatPlan, prior: ForwardValue | null): Promise<void> {
    this.calls.push(`apply ${plan.owner}`);
    if (this.failApply) throw new NatError('EPERM', 'Operation not permitted');
    this.tables.set(plan.owner, { plan, prior });
  }
  async remove(owner: string): Promise<boolean> {
    this.calls.push(`remove ${owner}`);
    return this.tables.delete(owner);
  }
}

class FakeForwarding implements ForwardingControl {
  writes: ForwardValue[] = [];
  failWrite = false;
  constructor(public value: ForwardValue) {}
  async read(): Promise<ForwardValue> {
    return this.value;
  }
  async write(v: ForwardValue): Promise<void> {
    if (this.failWrite) throw new NatError('EPERM', 'no');
    this.writes.push(v);
    this.value = v;
  }
}

let nsCounter = 0;
function setup(initial: ForwardValue = '0') {
  const backend = new FakeBackend();
  const fwd = new FakeForwarding(initial);
  const key = `ns${nsCounter++}`;
  const make = (owner: string) => new NatController({ owner, backend: async () => backend, forwarding: fwd, namespaceKey: key });
  return { backend, fwd, make };
}
const plan = (owner: string, extra = {}) => makePlan(owner, { subnet: '192.168.77.0/24', ...extra });

describe('nat controller', () => {
  it('enables, records ip_forward from before, and restores it on disable', async () => {
    const { backend, fwd, make } = setup('0');
    const c = make('n1');
    const st = await c.enable(plan('n1'));
    assert.equal(st.active, true);
    assert.equal(st.ipForward, '1');
    assert.equal(st.ipForwardBefore, '0');
    assert.equal(backend.tables.get('n1')!.prior, '0');
    const off = await c.disable();
    assert.equal(off.active, false);
    assert.equal(fwd.value, '0');
    assert.deepEqual(fwd.writes, ['1', '0']);
  });

  it('does not write ip_forward when it was already on, and leaves it on', async () => {
    const { fwd, make } = setup('1');
    const c = make('n1');
    await c.enable(plan('n1'));
    await c.disable();
    assert.deepEqual(fwd.writes, []);
  });

  it('forward: false leaves ip_forward alone', async () => {
    const { backend, fwd, make } = setup('0');
    const c = make('n1');
    const st = await c.enable(plan('n1', { forward: false }));
    assert.equal(st.ipForward, '0');
    assert.equal(backend.tables.get('n1')!.prior, null);
    await c.disable();
    assert.deepEqual(fwd.writes, []);
  });

  it('two nodes share ip_forward: the value from before the first is restored after the last', async () => {
    const { fwd, make } = setup('0');
    const a = make('a');
    const b = make('b');
    await a.enable(plan('a'));
    const sb = await b.enable(plan('b'));
    assert.equal(sb.ipForwardBefore, '0', 'b records the original value, not the 1 that a set');
    await a.disable();
    assert.equal(fwd.value, '1', 'b still needs forwarding');
    await b.disable();
    assert.equal(fwd.value, '0');
  });

  it('adopts a leftover of a killed run: restores the value recorded on it', async () => {
    const { backend, fwd, make } = setup('1');
    backend.tables.set('n1', { plan: plan('n1'), prior: '0' }); // a killed run left this, with forwarding on
    const c = make('n1');
    const st = await c.enable(plan('n1'));
    assert.equal(st.ipForwardBefore, '0');
    assert.equal(backend.tables.size, 1);
    await c.disable();
    assert.equal(fwd.value, '0');
  });

  it('disabling a leftover it never enabled still restores the recorded value', async () => {
    const { backend, fwd, make } = setup('1');
    backend.tables.set('n1', { plan: plan('n1'), prior: '0' });
    await make('n1').disable();
    assert.equal(backend.tables.size, 0);
    assert.equal(fwd.value, '0');
  });

  it('re-enabling without forwarding gives forwarding back', async () => {
    const { fwd, make } = setup('0');
    const c = make('n1');
    await c.enable(plan('n1'));
    assert.equal(fwd.value, '1');
    await c.enable(plan('n1', { forward: false }));
    assert.equal(fwd.value, '0');
  });

  it('rolls back the rules when forwarding cannot be switched on', async () => {
    const { backend, fwd, make } = setup('0');
    fwd.failWrite = true;
    const c = make('n1');
    await assert.rejects(c.enable(plan('n1')), (e: NatError) => e.code === 'EPERM');
    assert.equal(backend.tables.size, 0);
    assert.deepEqual(backend.calls, ['apply n1', 'remove n1']);
    // The share was released: a later success records the real original again.
    fwd.failWrite = false;
    const st = await c.enable(plan('n1'));
    assert.equal(st.ipForwardBefore, '0');
  });

  it('a failed apply changes nothing (not even ip_forward)', async () => {
    const { backend, fwd, make } = setup('0');
    backend.failApply = true;
    await assert.rejects(make('n1').enable(plan('n1')), /not permitted/);
    assert.deepEqual(fwd.writes, []);
  });

  it('a missing tool is an operation error, not a crash at construction', async () => {
    const c = new NatController({
      owner: 'n1',
      backend: async () => {
        throw new NatError('ENOENT', 'nft not found');
      },
      forwarding: new FakeForwarding('0'),
      namespaceKey: 'x',
    });
    await assert.rejects(c.enable(plan('n1')), /nft not found/);
  });

  it('runs operations one at a time in call order', async () => {
    const { backend, make } = setup('0');
    const c = make('n1');
    const ops = [c.enable(plan('n1')), c.disable(), c.enable(plan('n1')), c.disable()];
    await Promise.all(ops);
    assert.deepEqual(backend.calls, ['apply n1', 'remove n1', 'apply n1', 'remove n1']);
    assert.throws(() => c.enable(plan('other')), /given to the controller/);
  });
});
