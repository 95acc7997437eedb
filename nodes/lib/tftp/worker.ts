/**
 * A transfer worker thread (see worker-pool.ts): opens its own copy of the store, runs the jobs the
 * main thread hands it with a TransferRunner, and posts back each job's events unchanged. On 'close' it
 * aborts its transfers, waits until their sockets and files are closed, closes the store, and
 * lets the thread end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BusyPoller } from './busy-poll';
import type { FromWorker, ToWorker, WorkerInit } from './worker-pool';
import { TransferRunner } from './runner';
import { openStoreSpec } from '../store/open-store';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);

async function main(): Promise<void> {
  let store;
  try {
    store = await openStoreSpec(init.store);
  } catch (err) {
    post({ type: 'fatal', message: (err as Error).message });
    port.close();
    return;
  }
  const poller = new BusyPoller(init.busyPollMs);
  const runner = new TransferRunner(store, init.runner, poller);
  const jobs = new Set<Promise<void>>();

  port.on('message', (m: ToWorker) => {
    if (m.type === 'job') {
      const { id } = m.job;
      const p = runner
        .run(m.job, (event) => post({ type: 'job', id, event }))
        .finally(() => {
          jobs.delete(p);
          post({ type: 'closed', id });
        });
      jobs.add(p);
    } else if (m.type === 'close') {
      poller.stop();
      runner.abortAll('server shutting down');
      void Promise.all(jobs)
        .then(() => store.close())
        .catch(() => undefined)
        .finally(() => {
          post({ type: 'bye' });
          // Closing the port lets the thread's event loop run dry and the thread exit.
          port.close();
        });
    }
  });
  post({ type: 'ready' });
}

void main();
