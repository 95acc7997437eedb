// System Use Sharing Protocol (IEEE P1281) and the Rock Ridge entries we use (IEEE P1282).
import { decDate, recordDate, u32both } from './bytes';
import { SECTOR } from './descriptors';
import { badImage, readExact, type ImageSource } from './source';

export interface SuspEntry {
  sig: string;
  /** The whole entry, header included (so offsets match the specification's tables). */
  raw: Buffer;
}

interface Continuation {
  block: number;
  offset: number;
  length: number;
}

/** Limits that keep a corrupt CE chain from costing more than a sane image ever needs. */
const MAX_CE_LENGTH = 64 * 1024;
const MAX_CE_HOPS = 32;

/** Splits one system use area (or continuation area) into entries; `at` is for messages. */
export function parseSuspArea(area: Buffer, at: number): { entries: SuspEntry[]; ce?: Continuation } {
  const entries: SuspEntry[] = [];
  let ce: Continuation | undefined;
  let pos = 0;
  while (pos + 4 <= area.length) {
    // A zero signature is padding (mkisofs pads the area to even length with zeros).
    if (area[pos] === 0) break;
    const sig = area.toString('latin1', pos, pos + 2);
    const len = area[pos + 2];
    if (len < 4 || pos + len > area.length) {
      throw badImage(`corrupt Rock Ridge/SUSP entry "${sig}" at byte ${at + pos}: length ${len} does not fit its area`);
    }
    const raw = area.subarray(pos, pos + len);
    pos += len;
    if (sig === 'ST') break;
    if (sig === 'CE') {
      if (len < 28) throw badImage(`corrupt SUSP CE entry at byte ${at + pos - len}`);
      ce = { block: u32both(raw, 4), offset: u32both(raw, 12), length: u32both(raw, 20) };
      continue;
    }
    entries.push({ sig, raw });
  }
  return { entries, ce };
}

/** The SP entry at the start of the root's '.' record says SUSP is in use and how many bytes to skip. */
export function detectSusp(systemUse: Buffer): number | undefined {
  if (systemUse.length >= 7 && systemUse.toString('latin1', 0, 2) === 'SP' && systemUse[2] >= 7 && systemUse[4] === 0xbe && systemUse[5] === 0xef) {
    return systemUse[6];
  }
  return undefined;
}

/** Collects a record's entries, following CE continuation areas with loop and size limits. */
export async function collectSusp(src: ImageSource, systemUse: Buffer, skip: number, at: number): Promise<SuspEntry[]> {
  let { entries, ce } = parseSuspArea(systemUse.subarray(Math.min(skip, systemUse.length)), at + skip);
  const seen = new Set<string>();
  while (ce) {
    const key = `${ce.block}:${ce.offset}`;
    if (seen.has(key)) throw badImage(`Rock Ridge continuation (CE) loop at block ${ce.block} for the record at byte ${at}`);
    if (seen.size >= MAX_CE_HOPS) throw badImage(`more than ${MAX_CE_HOPS} Rock Ridge continuation areas for the record at byte ${at}`);
    seen.add(key);
    if (ce.length > MAX_CE_LENGTH || ce.offset >= SECTOR) {
      throw badImage(`Rock Ridge continuation area of ${ce.length} bytes at block ${ce.block}+${ce.offset} is implausible (record at byte ${at})`);
    }
    const pos = ce.block * SECTOR + ce.offset;
    const area = await readExact(src, pos, ce.length, `Rock Ridge continuation area for the record at byte ${at}`);
    const next = parseSuspArea(area, pos);
    entries = entries.concat(next.entries);
    ce = next.ce;
  }
  return entries;
}

export interface SymlinkTarget {
  /** Starts at the image root (SL ROOT or VOLROOT component). */
  absolute: boolean;
  /** Components; '.' and '..' for CURRENT and PARENT. */
  parts: string[];
}

export interface RockRidge {
  name?: string;
  mode?: number;
  symlink?: SymlinkTarget;
  /** CL: this entry stands for a directory relocated to this block (deep directory relocation). */
  childLink?: number;
  /** RE: this is the relocated directory itself, listed under rr_moved; hidden there. */
  relocated: boolean;
  mtime?: Date;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

const NM_CONTINUE = 0x01;
const SL_CONTINUE = 0x01;
const SL_CURRENT = 0x02;
const SL_PARENT = 0x04;
const SL_ROOT = 0x08;
const SL_VOLROOT = 0x10;
const SL_HOST = 0x20;

/** Appends the components of one SL entry to `target`; `pending` carries a CONTINUE'd component. */
function parseSl(raw: Buffer, target: SymlinkTarget, pending: { text: string | undefined }, at: number): void {
  let pos = 5;
  while (pos < raw.length) {
    if (pos + 2 > raw.length) throw badImage(`corrupt Rock Ridge SL entry for the record at byte ${at}`);
    const flags = raw[pos];
    const len = raw[pos + 1];
    if (pos + 2 + len > raw.length) throw badImage(`corrupt Rock Ridge SL component for the record at byte ${at}: length ${len} overruns the entry`);
    const text = raw.toString('utf8', pos + 2, pos + 2 + len);
    pos += 2 + len;
    if (flags & SL_HOST) throw badImage(`Rock Ridge symlink for the record at byte ${at} names a host, which cannot be resolved inside the image`);
    if (flags & (SL_ROOT | SL_VOLROOT)) {
      if (target.parts.length === 0 && pending.text === undefined) target.absolute = true;
      continue;
    }
    if (flags & SL_CURRENT) target.parts.push('.');
    else if (flags & SL_PARENT) target.parts.push('..');
    else {
      pending.text = (pending.text ?? '') + text;
      if (flags & SL_CONTINUE) continue;
      target.parts.push(pending.text);
      pending.text = undefined;
    }
  }
}

/** Reads the Rock Ridge entries we use: NM (with CONTINUE), PX, SL, CL, RE, TF. */
export function interpretRockRidge(entries: SuspEntry[], at: number): RockRidge {
  const rr: RockRidge = { relocated: false };
  let name: string | undefined;
  let symlink: SymlinkTarget | undefined;
  const pending = { text: undefined as string | undefined };
  for (const { sig, raw } of entries) {
    switch (sig) {
      case 'NM': {
        if (raw.length < 5) break;
        // CURRENT/PARENT flags (0x02/0x04) only occur on '.'/'..'; their text is empty anyway.
        name = (name ?? '') + raw.toString('utf8', 5);
        if (!(raw[4] & NM_CONTINUE)) rr.name = name;
        break;
      }
      case 'PX':
        if (raw.length >= 12) rr.mode = u32both(raw, 4);
        break;
      case 'SL':
        if (raw.length < 5) break;
        symlink ??= { absolute: false, parts: [] };
        parseSl(raw, symlink, pending, at);
        break;
      case 'CL':
        if (raw.length >= 12) rr.childLink = u32both(raw, 4);
        break;
      case 'RE':
        rr.relocated = true;
        break;
      case 'TF':
        rr.mtime = parseTfModify(raw) ?? rr.mtime;
        break;
    }
  }
  // An NM chain that never ended is still the best name we have.
  if (rr.name === undefined && name !== undefined) rr.name = name;
  if (symlink) {
    if (pending.text !== undefined) symlink.parts.push(pending.text);
    rr.symlink = symlink;
  }
  return rr;
}

/** TF holds several timestamps in flag-bit order; we want MODIFY (bit 1). */
function parseTfModify(raw: Buffer): Date | undefined {
  if (raw.length < 5) return undefined;
  const flags = raw[4];
  if (!(flags & 0x02)) return undefined;
  const size = flags & 0x80 ? 17 : 7;
  const at = 5 + (flags & 0x01 ? size : 0);
  if (at + size > raw.length) return undefined;
  return size === 17 ? decDate(raw, at) : recordDate(raw, at);
}
