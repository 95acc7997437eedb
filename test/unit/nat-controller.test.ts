import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Found, Installed, NatBackend } from '../../nodes/lib/nat/backend';
import { NatController, type RemovedLeftover } from '../../nodes/lib/nat/controller';
import { NatError } from '../../nodes/lib/nat/errors';
import type { Liveness, OwnerMark } from '../../nodes/lib/nat/owner';
import { makePlan, type ForwardValue, type NatPlan } from '../../nodes/lib/nat/plan';
import type { ForwardingControl } from '../../nodes/lib/nat/sysctl';

interface Table {
  plan: NatPlan;
  prior: ForwardValue | null;
  mark: OwnerMark | null;
}

/** An in-memory firewall: one entry per owner, as the real backends keep one table/chain per owner. */
class FakeBackend implements NatBackend {
  readonly kind = 'nftables' as const;
  readonly tables = new Map<string, Table>();
  failApply = false;
  calls: string[] = [];
  keyOf(owner: string): string {
    return owner;
  }
  async inspect(owner: string): Promise<Installed | null> {
    const t = this.tables.get(owner);
    return t ? { rules: [`masquerade ${t.plan.subnet.cidr}`], priorForward: t.prior } : null;
  }
  async list(): Promise<Found[]> {
    return [...this.tables].map(([owner, t]) => ({ key: owner, owner, mark: t.mark, rules: [`masquerade ${t.plan.subnet.cidr}`], priorForward: t.prior }));
  }
  async apply(plan: NatPlan, prior: ForwardValue | null, mark: OwnerMark | null): Promise<void> {
    this.calls.push(`apply ${plan.owner}`);
    if (this.failApply) throw new NatError('EPERM', 'Operation not permitted');
    this.tables.set(plan.owner, { plan, prior, mark });
  }
  async remove(owner: string): Promise<boolean> {
    this.calls.push(`remove ${owner}`);
    return this.tables.delete(owner);
  }
  async removeKey(key: string): Promise<boolean> {
    this.calls.push(`removeKey ${key}`);
    return this.tables.delete(key);
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
/** This process, another live one, a dead one, and one that cannot be judged. */
const SELF: OwnerMark = { pid: 100, start: '5000', pidns: '4026531836' };
const LIVE: OwnerMark = { pid: 200, start: '6000', pidns: '4026531836' };
const DEAD: OwnerMark = { pid: 300, start: '7000', pidns: '4026531836' };
const OTHER_NS: OwnerMark = { pid: 1, start: '10', pidns: '4026532999' };
const liveness = (m: OwnerMark): Liveness => (m.pid === LIVE.pid ? 'alive' : m.pid === DEAD.pid ? 'dead' : 'unknown');

function setup(initial: ForwardValue = '0') {
  const backend = new FakeBackend();
  const fwd = new FakeForwarding(initial);
  const key = `ns${nsCounter++}`;
  const removed: RemovedLeftover[] = [];
  const make = (owner: string, self: OwnerMark | null = SELF) =>
    new NatController({ owner, backend: async () => backend, forwarding: fwd, namespaceKey: key, self, liveness, onLeftovers: (r) => removed.push(...r) });
  return { backend, fwd, make, removed };
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
    backend.tables.set('n1', { plan: plan('n1'), prior: '0', mark: DEAD }); // a killed run left this, with forwarding on
    const c = make('n1');
    const st = await c.enable(plan('n1'));
    assert.equal(st.ipForwardBefore, '0');
    assert.equal(backend.tables.size, 1);
    await c.disable();
    assert.equal(fwd.value, '0');
  });

  it('disabling a leftover it never enabled still restores the recorded value', async () => {
    const { backend, fwd, make } = setup('1');
    backend.tables.set('n1', { plan: plan('n1'), prior: '0', mark: DEAD });
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

  describe('leftovers of other owners', () => {
    it('after a kill -9 and a new node id: the old rules go and ip_forward gets its original value back', async () => {
      // The killed runtime's node "old" turned forwarding on (it was 0) and left its rules.
      const { backend, fwd, make, removed } = setup('1');
      backend.tables.set('old', { plan: plan('old', { redirect: true, redirectTo: 8080 }), prior: '0', mark: DEAD });
      const c = make('new');
      const st = await c.enable(plan('new'));
      assert.deepEqual([...backend.tables.keys()], ['new']);
      assert.equal(st.ipForwardBefore, '0', 'the value recorded on the leftover, not the 1 the killed run set');
      assert.deepEqual(removed.map((r) => [r.owner, r.priorForward]), [['old', '0']]);
      await c.close();
      assert.equal(fwd.value, '0');
      assert.equal(backend.tables.size, 0);
    });

    it('a new node without forwarding restores the value at once', async () => {
      const { backend, fwd, make } = setup('1');
      backend.tables.set('old', { plan: plan('old'), prior: '0', mark: DEAD });
      await make('new').enable(plan('new', { forward: false }));
      assert.equal(fwd.value, '0');
      assert.deepEqual([...backend.tables.keys()], ['new']);
    });

    it('leaves the rules of a live process alone, and its forwarding on', async () => {
      const { backend, fwd, make, removed } = setup('1');
      backend.tables.set('other', { plan: plan('other'), prior: '0', mark: LIVE });
      backend.tables.set('elsewhere', { plan: plan('elsewhere'), prior: null, mark: OTHER_NS });
      const c = make('new');
      const st = await c.enable(plan('new'));
      assert.equal(st.ipForwardBefore, '0', 'recorded by the live owner');
      await c.close();
      assert.deepEqual([...backend.tables.keys()].sort(), ['elsewhere', 'other']);
      assert.equal(fwd.value, '1', 'the live owner still needs forwarding');
      assert.deepEqual(removed, []);
    });

    it('leaves the rules of an open node of this runtime alone; an orphan of this runtime goes', async () => {
      // Owner ids unique to this test: the open-controller registry is the whole process's.
      const { backend, make } = setup('0');
      const a = make('rt-a');
      await a.enable(plan('rt-a'));
      // Rules of this process whose node is not open any more (its close failed to remove them).
      backend.tables.set('rt-gone', { plan: plan('rt-gone'), prior: null, mark: SELF });
      const b = make('rt-b');
      await b.enable(plan('rt-b'));
      assert.deepEqual([...backend.tables.keys()].sort(), ['rt-a', 'rt-b']);
      await a.close();
      await b.close();
      // Closed: a later start removes their rules if they are still there.
      backend.tables.set('rt-a', { plan: plan('rt-a'), prior: '0', mark: SELF });
      await make('rt-c').enable(plan('rt-c'));
      assert.deepEqual([...backend.tables.keys()], ['rt-c']);
    });

    it('removes unmarked rules (an older version); keeps everything when its own mark is unknown', async () => {
      const { backend, make } = setup('0');
      backend.tables.set('legacy', { plan: plan('legacy'), prior: '0', mark: null });
      await make('x', null).enable(plan('x'));
      assert.ok(backend.tables.has('legacy'), 'without knowing itself a controller judges nobody');
      await make('y').enable(plan('y'));
      assert.ok(!backend.tables.has('legacy'));
    });

    it('marks its own rules with its process', async () => {
      const { backend, make } = setup('0');
      await make('n1').enable(plan('n1'));
      assert.deepEqual(backend.tables.get('n1')!.mark, SELF);
    });
  });
});
