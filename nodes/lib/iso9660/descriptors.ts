import { u16both, u32both, ucs2be } from './bytes';
import { badImage, readExact, type ImageSource } from './source';

export const SECTOR = 2048;
/** The volume descriptor set starts at logical sector 16 (ECMA-119 6.2.1). */
export const DESCRIPTOR_START = 16 * SECTOR;
/** Real images carry a handful of descriptors; a set longer than this is corrupt, not exotic. */
const MAX_DESCRIPTORS = 64;

export interface VolumeDescriptor {
  kind: 'primary' | 'joliet';
  volumeId: string;
  /** Bytes the volume claims (volume space size × block size). */
  volumeBytes: number;
  /** The 34-byte root directory record, parsed by records.ts. */
  rootRecord: Buffer;
  /** Where the descriptor sits, for error messages. */
  offset: number;
}

export interface DescriptorSet {
  primary: VolumeDescriptor;
  joliet?: VolumeDescriptor;
}

/** Joliet's escape sequences (UCS-2 levels 1–3): '%/@', '%/C', '%/E'. */
function isJolietEscape(esc: Buffer): boolean {
  for (let i = 0; i + 2 < esc.length; i++) {
    if (esc[i] === 0x25 && esc[i + 1] === 0x2f && (esc[i + 2] === 0x40 || esc[i + 2] === 0x43 || esc[i + 2] === 0x45)) {
      return true;
    }
  }
  return false;
}

function parseVolume(sector: Buffer, offset: number, kind: VolumeDescriptor['kind']): VolumeDescriptor {
  const blockSize = u16both(sector, 128);
  // 2048 is what every CD/DVD image uses; other sizes would need a different sector model.
  if (blockSize !== SECTOR) throw badImage(`volume descriptor at byte ${offset} has logical block size ${blockSize}, only 2048 is supported`);
  const idBytes = sector.subarray(40, 72);
  const volumeId = (kind === 'joliet' ? ucs2be(idBytes) : idBytes.toString('latin1')).replace(/[\s\0]+$/, '');
  return {
    kind,
    volumeId,
    volumeBytes: u32both(sector, 80) * blockSize,
    rootRecord: Buffer.from(sector.subarray(156, 190)),
    offset,
  };
}

/** Reads the volume descriptor set: the primary descriptor, and a Joliet one when present. */
export async function readDescriptors(src: ImageSource): Promise<DescriptorSet> {
  if (src.size < DESCRIPTOR_START + SECTOR) {
    throw badImage(`not an ISO 9660 image: ${src.size} bytes is too small to hold a volume descriptor at byte ${DESCRIPTOR_START}`);
  }
  let primary: VolumeDescriptor | undefined;
  let joliet: VolumeDescriptor | undefined;
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const offset = DESCRIPTOR_START + i * SECTOR;
    if (offset + SECTOR > src.size) break;
    const sector = await readExact(src, offset, SECTOR, `volume descriptor ${i}`);
    if (sector.toString('latin1', 1, 6) !== 'CD001') {
      if (i === 0) throw badImage('not an ISO 9660 image: no "CD001" volume descriptor at byte 32768');
      break; // A set without terminator: use what we found (some mastering tools omit it).
    }
    const type = sector[0];
    if (type === 255) break; // set terminator
    if (type === 1 && !primary) primary = parseVolume(sector, offset, 'primary');
    if (type === 2 && !joliet && isJolietEscape(sector.subarray(88, 120))) joliet = parseVolume(sector, offset, 'joliet');
  }
  if (!primary) throw badImage('not a usable ISO 9660 image: no primary volume descriptor');
  if (primary.volumeBytes > src.size) {
    throw badImage(`the image is truncated: the volume is ${primary.volumeBytes} bytes but the file has only ${src.size}`);
  }
  return { primary, joliet };
}
