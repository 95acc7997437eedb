/**
 * A PXE client for the lab: QEMU on a tap device inside a namespace, with the serial console on
 * stdin/stdout so tests can drive the ISO's own boot menu with keys and wait for the guest's
 * marker line. Always TCG: this machine's /dev/kvm cannot run a Linux guest (see
 * pxe-lab-notes.md).
 *
 * Keys on the serial console (what archiso's menus allow: `SERIAL 0 115200` in their head file):
 * syslinux reads the serial port as well as the keyboard, and vesamenu.c32 draws the menu on the
 * serial port with ANSI sequences (the selected entry in reverse video, `MENU COLOR sel 7;...`).
 * chooseMenuEntry() presses Down-arrow and Enter there, checking after each key that the
 * highlight moved. Two things found on the way:
 *  - Keys sent while the menu is still being drawn are lost: it waits until the menu is quiet.
 *  - Down-arrow is three bytes (ESC [ B). syslinux's get_key() takes an ESC that is not followed
 *    within about one timer tick (55 ms) as a bare Escape, which leaves the menu for the `boot:`
 *    prompt. QEMU hands serial input to the guest's UART a byte at a time, so on a loaded
 *    machine the sequence can arrive split (seen here: about 1 key in 20 with two busy loops
 *    beside QEMU). A user then sees the `boot:` prompt and presses Enter, which shows the menu
 *    again (UI runs again, first entry highlighted): chooseMenuEntry does the same, counts it in
 *    `retries`, and starts over. Ctrl-N/Ctrl-P (single bytes, also "down"/"up" in syslinux's
 *    menu) are available as `keys: 'ctrl'`.
 *  - When a move does not show within 15 s (a loaded machine), Ctrl-L makes the menu redraw itself,
 *    selection included; a Down that was lost is pressed again (`redraws` counts these looks).
 *  - A BIOS machine without a graphics card makes SeaBIOS copy int 10h text output to the serial
 *    port (its "sercon"), so every menu character appears twice there. startVm gives BIOS
 *    machines a VGA card (`-vga std`, not displayed) as a real PC has; the serial port then
 *    carries syslinux's own copy only.
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
  /** A VGA card (never displayed). Default: yes for BIOS (see above), no for UEFI. */
  vga?: boolean;
  /**
   * UEFI only: boot by UEFI HTTP Boot. OVMF makes PXE IPv4, PXE IPv6, HTTP IPv4 and HTTP IPv6 boot
   * entries for the NIC, in that order, and QEMU's bootindex cannot tell them apart (one device
   * path); fw_cfg switches its PXE entries off (opt/org.tianocore/IPv4PXESupport and
   * IPv6PXESupport, OvmfPkg/RUNTIME_CONFIG.md), which leaves HTTP Boot over IPv4 first.
   */
  httpBoot?: boolean;
}

/** A guest's serial console: what it printed, and its input. */
export interface SerialConsole {
  /** The serial output kept so far (the tail when it is long). */
  output(): string;
  /** How many characters the guest has printed in all (grows even when output() is a tail). */
  received(): number;
  /** Writes to the guest's serial input. */
  write(data: string): void;
  /** True once QEMU has exited. */
  exited(): boolean;
}

export interface Vm extends SerialConsole {
  proc: ChildProcess;
  cleanup(): void;
}

const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const KEEP = 400_000;

export function startVm(ns: Netns, opts: VmOptions): Vm {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-vm-'));
  const nic = opts.nic ?? 'virtio-net-pci';
  const args = ['-accel', 'tcg', '-cpu', 'max', '-m', String(opts.memoryMb ?? 768), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-monitor', 'none'];
  if (opts.vga ?? opts.firmware === 'bios') args.push('-vga', 'std');
  const romArg = opts.rom === 'none' ? ',romfile=' : '';
  args.push('-netdev', `tap,id=n0,ifname=${opts.tap},script=no,downscript=no`, '-device', `${nic},netdev=n0,mac=${opts.mac},bootindex=1${romArg}`);
  if (opts.firmware === 'uefi') {
    const vars = path.join(tmp, 'OVMF_VARS.fd');
    fs.copyFileSync(OVMF_VARS, vars);
    args.push('-machine', 'q35', '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
    if (opts.httpBoot) args.push('-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=no', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=no');
  } else {
    args.push('-machine', 'pc', '-boot', 'n');
  }
  // ns.spawn pipes stdin too: QEMU's -serial stdio reads the guest's serial input from it.
  const proc = ns.spawn('/usr/bin/qemu-system-x86_64', args);
  let out = '';
  let total = 0;
  const onData = (d: Buffer): void => {
    const s = d.toString('latin1');
    total += s.length;
    // Keep the tail only: firmware can print a lot.
    out = (out + s).slice(-KEEP);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  proc.stdin!.on('error', () => undefined); // QEMU gone: writes are moot
  return {
    proc,
    output: () => out,
    received: () => total,
    write: (data) => {
      if (proc.exitCode === null && proc.signalCode === null && proc.stdin?.writable) proc.stdin.write(data);
    },
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    cleanup: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** The serial output printed since `mark` (a received() value), as far as the tail still holds it. */
export function outputSince(con: SerialConsole, mark: number): string {
  const out = con.output();
  const n = con.received() - mark;
  return n <= 0 ? '' : out.slice(Math.max(0, out.length - n));
}

/** ANSI escape sequences and the G0/G1 charset switches syslinux uses for its frame. */
export function plainSerial(s: string): string {
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()%][@0-9A-Za-z]|\x1b[a-zA-Z]|[\x0e\x0f]/g, ''); // eslint-disable-line no-control-regex
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
        reject(new Error(`QEMU exited before ${re}; serial tail:\n${plainSerial(vm.output()).slice(-3000)}`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; serial tail:\n${plainSerial(vm.output()).slice(-3000)}`));
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

// ------------------------------------------------------------------ boot results

/** Serial lines after which a boot cannot reach the initramfs any more. */
export const STUCK_BEFORE_KERNEL: RegExp[] = [
  /No DEFAULT or UI configuration directive found/,
  /Unable to locate configuration file/,
  /Could not find kernel image/,
  /Failed to load (ldlinux\.c32|COM32 file)/,
  /Kernel panic - not syncing/,
  /No bootable device/,
  /No more network devices/,
];

/**
 * The menus put no console=ttyS0 on the kernel line, so between syslinux's "Loading <initrd>...ok"
 * and the initramfs's first `pxe-test:` line the serial port is silent (the kernel logs to tty0).
 * A kernel that panics before /init would only show as a timeout; this many ms of silence after
 * the initrd loaded count as a failure instead.
 */
export const SILENT_KERNEL_MS = 90_000;

export interface BootLine {
  outcome: 'marker' | 'fail';
  line: string;
}

/** A verdict on the serial output so far: the marker or fail line, or a reason it is stuck. */
export function scanBoot(out: string, initrdLoadedAt: number | null, now: number): BootLine | { outcome: 'stuck'; line: string } | null {
  const m = /PXE-TEST-(MARKER|FAIL)[^\r\n]*(?=[\r\n])/.exec(out);
  if (m) return { outcome: m[1] === 'MARKER' ? 'marker' : 'fail', line: m[0] };
  for (const re of STUCK_BEFORE_KERNEL) {
    const s = re.exec(out);
    if (s) {
      const lineStart = out.lastIndexOf('\n', s.index) + 1;
      const lineEnd = out.indexOf('\n', s.index);
      return { outcome: 'stuck', line: `stuck before the kernel: ${plainSerial(out.slice(lineStart, lineEnd < 0 ? undefined : lineEnd)).trim()}` };
    }
  }
  if (initrdLoadedAt !== null && now - initrdLoadedAt > SILENT_KERNEL_MS && !/pxe-test: /.test(out)) {
    return { outcome: 'stuck', line: `the kernel and initramfs loaded, but /init printed nothing on ttyS0 for ${SILENT_KERNEL_MS / 1000} s (kernel messages go to tty0: a panic before /init looks like this)` };
  }
  return null;
}

/** Matches syslinux's "Loading <file>... ok" for an initrd (the last thing it prints before the kernel runs). */
const INITRD_LOADED = /Loading \S*(initramfs|archiso\.img|\.img)\S*\s*\.\.\.\s*ok/;

/**
 * Waits for the guest's PXE-TEST-MARKER / PXE-TEST-FAIL line. Rejects early when the boot is stuck
 * before the kernel, or when /init stays silent after the initrd loaded, or when QEMU exits.
 */
export function waitForBootResult(vm: Vm, timeoutMs: number): Promise<BootLine> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let initrdAt: number | null = null;
    const check = (): void => {
      const out = vm.output();
      if (initrdAt === null && INITRD_LOADED.test(plainSerial(out))) initrdAt = Date.now();
      const r = scanBoot(out, initrdAt, Date.now());
      if (!r) {
        if (vm.exited()) fin(new Error(`QEMU exited without a marker; serial tail:\n${plainSerial(out).slice(-3000)}`));
        else if (Date.now() - started > timeoutMs) fin(new Error(`timed out after ${timeoutMs} ms waiting for the marker; serial tail:\n${plainSerial(out).slice(-3000)}`));
        return;
      }
      if (r.outcome === 'stuck') fin(new Error(`${r.line}; serial tail:\n${plainSerial(out).slice(-3000)}`));
      else fin(null, r as BootLine);
    };
    const timer = setInterval(check, 250);
    const fin = (err: Error | null, r?: BootLine): void => {
      clearInterval(timer);
      if (err) reject(err);
      else resolve(r!);
    };
    check();
  });
}

// ------------------------------------------------------------------ keys

/** Keys as a serial terminal sends them. */
export const KEYS = {
  down: '\x1b[B',
  up: '\x1b[A',
  enter: '\r',
  escape: '\x1b',
  tab: '\t',
  backspace: '\x08',
  ctrlN: '\x0e', // "down" in syslinux's menu, one byte
  ctrlP: '\x10', // "up"
  ctrlL: '\x0c', // redraw the menu
} as const;
export type KeyName = keyof typeof KEYS;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Types `keys` (names from KEYS, or raw strings) on the serial console, `gapMs` apart. */
export async function sendKeys(con: SerialConsole, keys: (KeyName | string)[] | string, gapMs = 300): Promise<void> {
  const list = typeof keys === 'string' ? [keys] : keys;
  for (let i = 0; i < list.length; i++) {
    if (i > 0) await sleep(gapMs);
    const k = list[i];
    con.write(k in KEYS ? KEYS[k as KeyName] : k);
  }
}

export interface MenuOptions {
  /** The menu's visible entries (MENU LABEL texts) from the top, at least up to the one wanted. */
  labels: string[];
  /** For the whole choice, from now (the menu appears 5-20 s after power-on). Default 120 s. */
  timeoutMs?: number;
  /** 'arrows': Down-arrow (ESC [ B), as asked; 'ctrl': Ctrl-N, syslinux's one-byte "down". */
  keys?: 'arrows' | 'ctrl';
  /** Quiet time that means the menu is fully drawn and reading keys. Default 800 ms. */
  settleMs?: number;
}

export interface MenuChoice {
  /** The entry chosen (its MENU LABEL). */
  label: string;
  /** ms from the call until the menu was first on the serial console. */
  menuAfterMs: number;
  /** ms from the call until Enter was pressed. */
  chosenAfterMs: number;
  /** Times the menu fell back to `boot:` (an arrow's ESC taken alone) and was reopened with Enter. */
  retries: number;
  /** Times a move was not seen on the serial port and Ctrl-L redrew the menu to look again. */
  redraws: number;
  /** Every key sent, in order (names). */
  keys: string[];
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The entry drawn last in reverse video (vesamenu/menu draw the selected entry with SGR 7). */
export function highlightedEntry(out: string, labels: string[]): string | null {
  const re = new RegExp(`\\x1b\\[([0-9;]*)m ?(${labels.map(escapeRe).join('|')})`, 'g');
  let current: string | null = null;
  for (const m of out.matchAll(re)) {
    if (m[1].split(';').includes('7')) current = m[2];
  }
  return current;
}

/**
 * Picks entry `index` (0 = the first, the one an untouched archiso PXE menu highlights) of the
 * syslinux menu on the serial console: waits for the menu, presses Down `index` times, each time
 * checking the highlight moved, then Enter. See the top of this file for the details.
 */
export async function chooseMenuEntry(con: SerialConsole, index: number, opts: MenuOptions): Promise<MenuChoice> {
  const { labels } = opts;
  if (index < 0 || index >= labels.length) throw new Error(`menu entry ${index} not among ${JSON.stringify(labels)}`);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const settleMs = opts.settleMs ?? 800;
  const down = opts.keys === 'ctrl' ? 'ctrlN' : 'down';
  const started = Date.now();
  const deadline = started + timeoutMs;
  const sent: string[] = [];
  let retries = 0;
  let redraws = 0;
  let menuAfterMs = -1;
  const tail = (): string => plainSerial(con.output()).slice(-2500);
  const fail = (why: string): never => {
    const raw = JSON.stringify(con.output().slice(-1500));
    throw new Error(`choosing menu entry ${index} (${labels[index]}): ${why}; keys sent: ${sent.join(' ') || 'none'}; serial tail:\n${tail()}\n--- raw serial tail:\n${raw}`);
  };
  const waitUntil = async (pred: () => boolean, what: string, limit = deadline): Promise<void> => {
    while (!pred()) {
      if (con.exited()) fail(`QEMU exited while waiting for ${what}`);
      if (Date.now() > limit) fail(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };
  const press = (k: KeyName): void => {
    sent.push(k);
    con.write(KEYS[k]);
  };
  // Until the output has been quiet for settleMs, or `max` ms passed (a menu with a TIMEOUT
  // redraws its countdown every second): the menu reads keys only once it has drawn.
  const settle = async (max: number): Promise<void> => {
    const from = Date.now();
    let last = con.received();
    let quietSince = Date.now();
    while (Date.now() - quietSince < settleMs && Date.now() - from < max) {
      await sleep(50);
      if (con.received() !== last) {
        last = con.received();
        quietSince = Date.now();
      }
    }
  };
  const waitForMenu = async (mark: number): Promise<void> => {
    await waitUntil(() => plainSerial(outputSince(con, mark)).includes(labels[0]), `the menu ("${labels[0]}")`);
    if (menuAfterMs < 0) menuAfterMs = Date.now() - started;
    await settle(3000);
  };

  await waitForMenu(0);
  for (;;) {
    let step = 0;
    let fellOut = false;
    let lookedAgain = 0;
    while (step < index) {
      let mark = con.received();
      press(down);
      const want = labels[step + 1];
      const sawIt = (): boolean => {
        const since = outputSince(con, mark);
        fellOut = /boot: ?/.test(plainSerial(since));
        return fellOut || highlightedEntry(since, labels) === want;
      };
      const limit = Math.min(deadline, Date.now() + 15_000);
      while (!sawIt() && Date.now() < limit && !con.exited()) await sleep(50);
      if (!fellOut && highlightedEntry(outputSince(con, mark), labels) !== want) {
        // Nothing seen (a loaded machine, a redraw we could not read): Ctrl-L makes the menu
        // draw itself again, selection included, and tells where the highlight is.
        if (++lookedAgain > 3) fail(`"${want}" never showed as highlighted`);
        redraws++;
        mark = con.received();
        press('ctrlL');
        let now: string | null = null;
        await waitUntil(() => {
          const since = outputSince(con, mark);
          fellOut = /boot: ?/.test(plainSerial(since));
          now = highlightedEntry(since, labels);
          return fellOut || (now !== null && plainSerial(since).includes(labels[labels.length - 1]));
        }, 'the menu to redraw after Ctrl-L', Math.min(deadline, Date.now() + 30_000));
        await settle(5000);
        if (!fellOut) {
          now = highlightedEntry(outputSince(con, mark), labels);
          if (now === labels[step]) continue; // the key was lost: press it again
          if (now !== want) fail(`after Down and Ctrl-L, "${now}" is highlighted, not "${want}"`);
        }
      }
      if (fellOut) break;
      step++;
      // Let it finish the redraw (the entry's help text) before the next key.
      await settle(5000);
    }
    if (!fellOut) {
      const now = highlightedEntry(con.output(), labels);
      if (now !== null && now !== labels[index]) fail(`"${now}" is highlighted, not "${labels[index]}"`);
      press('enter');
      return { label: labels[index], menuAfterMs, chosenAfterMs: Date.now() - started, retries, redraws, keys: sent };
    }
    // syslinux read the arrow's ESC alone and left the menu; the rest of the sequence ("[B") may
    // sit on the boot: line. Erase it; Enter on the empty line shows the menu again, with the
    // first entry highlighted.
    retries++;
    if (retries > 3) fail('the menu fell back to boot: more than 3 times');
    await sleep(500);
    for (let i = 0; i < 4; i++) press('backspace');
    await sleep(300);
    const mark = con.received();
    press('enter');
    await waitForMenu(mark);
  }
}
