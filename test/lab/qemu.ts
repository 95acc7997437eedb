/**
 * A PXE client for the lab: QEMU on a tap device inside a namespace, with the serial console on
 * stdout so tests can wait for the guest's marker line. Always TCG: this machine's /dev/kvm
 * cannot run a Linux guest (see pxe-lab-notes.md).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Netns } from './netns';

export interface VmOptions {
  tap: string;
  mac: string;
  firmware: 'bios' | 'uefi';
  /** 'ipxe': QEMU's NIC option ROM from ipxe-qemu (iPXE); 'none': firmware's own PXE stack (OVMF). */
  rom?: 'ipxe' | 'none';
  nic?: 'virtio-net-pci' | 'e1000';
  memoryMb?: number;
}

export interface Vm {
  proc: ChildProcess;
  /** Everything the guest printed on its serial console so far. */
  output(): string;
  cleanup(): void;
}

const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export function startVm(ns: Netns, opts: VmOptions): Vm {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-vm-'));
  const nic = opts.nic ?? 'virtio-net-pci';
  const args = ['-accel', 'tcg', '-cpu', 'max', '-m', String(opts.memoryMb ?? 768), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-monitor', 'none'];
  const romArg = opts.rom === 'none' ? ',romfile=' : '';
  args.push('-netdev', `tap,id=n0,ifname=${opts.tap},script=no,downscript=no`, '-device', `${nic},netdev=n0,mac=${opts.mac},bootindex=1${romArg}`);
  if (opts.firmware === 'uefi') {
    const vars = path.join(tmp, 'OVMF_VARS.fd');
    fs.copyFileSync(OVMF_VARS, vars);
    args.push('-machine', 'q35', '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  } else {
    args.push('-machine', 'pc', '-boot', 'n');
  }
  const proc = ns.spawn('/usr/bin/qemu-system-x86_64', args);
  let out = '';
  const onData = (d: Buffer): void => {
    // Keep the tail only: firmware can print a lot.
    out = (out + d.toString('latin1')).slice(-200000);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return {
    proc,
    output: () => out,
    cleanup: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** Waits until the guest prints a line matching `re` (or exits / times out). */
export function waitForSerial(vm: Vm, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = vm.output().match(re);
      if (m) {
        done();
        resolve(m);
        return true;
      }
      return false;
    };
    const onData = (): void => {
      check();
    };
    const onExit = (): void => {
      if (!check()) {
        done();
        reject(new Error(`QEMU exited before ${re}; serial tail:\n${vm.output().slice(-3000)}`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; serial tail:\n${vm.output().slice(-3000)}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      vm.proc.stdout!.off('data', onData);
      vm.proc.off('exit', onExit);
    };
    vm.proc.stdout!.on('data', onData);
    vm.proc.on('exit', onExit);
    check();
  });
}
