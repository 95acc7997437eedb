/**
 * Optional transfer workers: the per-packet work of many concurrent transfers (a send syscall per
 * block, an ACK to receive and handle) spread over worker_threads, one event loop per core. The
 * main thread keeps port 69, request validation, limits and events; a worker only runs jobs it
 * is handed (runner.ts) on its own store and its own transfer sockets, and posts back each
 * JobEvent as it is (the same type the main thread's runner reports). Jobs go to the worker with
 * the fewest running. close() ends every worker only after
 * its jobs have closed their sockets and files, then waits for the threads to exit.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { NegotiatedOptions } from './options';
import type { JobEvent, JobReport, RunnerConfig, TransferJob } from './runner';
import type { StoreSpec } from '../store/open-store';

/** How a worker opens its own copy of the store (openStoreSpec: as the store node opens it). */
export type WorkerStoreSpec = StoreSpec;

export interface WorkerInit {
  runner: RunnerConfig;
  busyPollMs: number;
  store: WorkerStoreSpec;
}

/** main → worker */
export type ToWorker = { type: 'job'; job: TransferJob } | { type: 'close' };

/** worker → main: the worker's own state, or a job's event tagged with the job's id. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'job'; id: number; event: JobEvent }
  /** The job's socket and file are closed. */
  | { type: 'closed'; id: number }
  | { type: 'bye' };

/**
 * A worker allocates little per packet, but a large young generation lets garbage (and the
 * read-ahead chunks it holds) pile up before a scavenge: with several workers that is tens of
 * MiB of RSS for nothing. A small one is scavenged often and cheaply (little survives).
 */
const LIMITS = { maxYoungGenerationSizeMb: 4 };

interface Pending {
  report: JobReport;
  options?: NegotiatedOptions;
  ended: boolean;
  resolve: () => void;
}

class TransferWorker {
  readonly jobs = new Map<number, Pending>();
  readonly exited: Promise<void>;
  private readonly thread: Worker;
  private alive = true;

  constructor(file: string, init: WorkerInit, onReady: (err?: Error) => void) {
    // Run from TypeScript sources (tests, bench, under tsx): worker threads do not get tsx's
    // loader for their entry file, so a one-line bootstrap registers it first.
    this.thread = file.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(file)});`, { eval: true, workerData: init, resourceLimits: LIMITS })
      : new Worker(file, { workerData: init, resourceLimits: LIMITS });
    let ready = false;
    this.thread.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        ready = true;
        onReady();
      } else if (m.type === 'fatal') {
        if (!ready) onReady(new Error(m.message));
      } else {
        this.onJobMessage(m);
      }
    });
    this.thread.on('error', (err) => {
      if (!ready) onReady(err);
    });
    this.exited = new Promise<void>((resolve) =>
      this.thread.once('exit', (code) => {
        this.alive = false;
        if (!ready) onReady(new Error(`transfer worker exited at start (${code})`));
        // A worker that died mid-transfer: its sockets died with it; end its jobs here.
        for (const [id, p] of this.jobs) {
          if (!p.ended) {
            if (p.options) p.report({ type: 'ended', result: { outcome: { kind: 'error', by: 'server', code: 0, message: 'transfer worker stopped' }, options: p.options, bytesAcked: 0, packetsSent: 0, retransmits: 0 } });
            else p.report({ type: 'failed', message: 'transfer worker stopped' });
          }
          this.jobs.delete(id);
          p.resolve();
        }
        resolve();
      }),
    );
  }

  run(job: TransferJob, report: JobReport): Promise<void> {
    if (!this.alive) {
      report({ type: 'failed', message: 'transfer worker stopped' });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.jobs.set(job.id, { report, ended: false, resolve });
      this.post({ type: 'job', job });
    });
  }

  close(): Promise<void> {
    if (this.alive) this.post({ type: 'close' });
    return this.exited;
  }

  private post(m: ToWorker): void {
    this.thread.postMessage(m);
  }

  private onJobMessage(m: Extract<FromWorker, { type: 'job' | 'closed' | 'bye' }>): void {
    if (m.type === 'bye') return;
    const p = this.jobs.get(m.id);
    if (!p) return;
    if (m.type === 'closed') {
      this.jobs.delete(m.id);
      p.resolve();
      return;
    }
    const ev = m.event;
    if (ev.type === 'started') p.options = ev.options;
    else if (ev.type === 'progress' && p.ended) return;
    else if (ev.type !== 'progress') p.ended = true;
    p.report(ev);
  }
}

export class WorkerPool {
  private readonly workers: TransferWorker[] = [];
  private readonly ready: Promise<void>;

  constructor(count: number, init: WorkerInit) {
    // worker.js beside this file once compiled; worker.ts when run through tsx (tests, bench).
    const file = path.join(__dirname, `worker${path.extname(__filename)}`);
    const readies: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      readies.push(new Promise<void>((resolve, reject) => this.workers.push(new TransferWorker(file, init, (err) => (err ? reject(err) : resolve())))));
    }
    this.ready = Promise.all(readies).then(() => undefined);
    this.ready.catch(() => undefined); // observed by start(); never an unhandled rejection
  }

  /** Resolves once every worker has opened its store; rejects with the first failure. */
  start(): Promise<void> {
    return this.ready;
  }

  run(job: TransferJob, report: JobReport): Promise<void> {
    let best = this.workers[0]!;
    for (const w of this.workers) if (w.jobs.size < best.jobs.size) best = w;
    return best.run(job, report);
  }

  /** Aborts every job, waits for sockets and files to close, and for every thread to exit. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
