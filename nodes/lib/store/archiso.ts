import { StoreError, type FileStore } from './types';

/**
 * The three places Arch ISOs have kept their BIOS PXE loader:
 *  - 'boot-syslinux':      boot/syslinux/syslinux.cfg (since 2023)
 *  - 'syslinux':           syslinux/syslinux.cfg at the root (2020–2023)
 *  - 'arch-boot-syslinux': arch/boot/syslinux/archiso.cfg (the wiki's era; served with
 *                          option 210 '/arch/' so the config path is relative to arch/)
 * pxelinux resolves every name without '::' against its working directory (option 210). The
 * newer menus name their modules and INCLUDEs bare ('whichsys.c32', 'archiso_pxe.cfg'), so the
 * working directory must be the syslinux folder itself; the wiki-era ones name them from arch/.
 */
export type ArchisoLayout = 'boot-syslinux' | 'syslinux' | 'arch-boot-syslinux';

/** DHCP settings that make pxelinux boot this layout. */
export interface ArchisoDhcp {
  /** Option 67 (boot file name / `file` field). */
  bootFile: string;
  /** Option 209 (PXELINUX config file), relative to the path prefix. */
  configFile: string;
  /** Option 210 (PXELINUX path prefix). */
  pathPrefix: string;
}

export interface ArchisoFiles {
  lpxelinux?: string;
  ldlinux?: string;
  config?: string;
  kernel?: string;
  initramfs?: string;
  airootfs?: string;
}

export interface ArchisoInfo {
  /** True when a loader layout and the kernel and initramfs were all found. */
  detected: boolean;
  layout: ArchisoLayout | null;
  /** Store paths of the pieces found (as the store spells them). */
  files: ArchisoFiles;
  dhcp: ArchisoDhcp | null;
  /** Pieces of the found layout that are absent (airootfs.sfs is needed by the booted system). */
  missing: (keyof ArchisoFiles)[];
}

interface LayoutSpec {
  layout: ArchisoLayout;
  dir: string;
  config: string;
  dhcp: ArchisoDhcp;
}

// Newest first: an ISO carrying several (none do) is served the way current releases boot.
const LAYOUTS: LayoutSpec[] = [
  {
    layout: 'boot-syslinux',
    dir: 'boot/syslinux',
    config: 'syslinux.cfg',
    dhcp: { bootFile: '/boot/syslinux/lpxelinux.0', configFile: 'syslinux.cfg', pathPrefix: '/boot/syslinux/' },
  },
  {
    layout: 'syslinux',
    dir: 'syslinux',
    config: 'syslinux.cfg',
    dhcp: { bootFile: '/syslinux/lpxelinux.0', configFile: 'syslinux.cfg', pathPrefix: '/syslinux/' },
  },
  {
    layout: 'arch-boot-syslinux',
    dir: 'arch/boot/syslinux',
    config: 'archiso.cfg',
    dhcp: { bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/' },
  },
];

// Current names first; 'vmlinuz' and 'archiso.img' are what the wiki-era ISOs shipped.
const KERNELS = ['arch/boot/x86_64/vmlinuz-linux', 'arch/boot/x86_64/vmlinuz'];
const INITRAMFS = ['arch/boot/x86_64/initramfs-linux.img', 'arch/boot/x86_64/archiso.img'];
const AIROOTFS = ['arch/x86_64/airootfs.sfs'];

/** The path of the first candidate that is a regular file; a miss is not an error. */
async function findFile(store: FileStore, candidates: string[]): Promise<string | undefined> {
  for (const c of candidates) {
    try {
      const st = await store.stat(c);
      if (!st.isDirectory) return st.path;
    } catch (err) {
      if (!(err instanceof StoreError) || (err.code !== 'ENOENT' && err.code !== 'ENOTDIR')) throw err;
    }
  }
  return undefined;
}

/** Works out whether a store (ISO or folder) holds an Arch ISO and where its PXE pieces are. */
export async function detectArchiso(store: FileStore): Promise<ArchisoInfo> {
  const files: ArchisoFiles = {};
  let spec: LayoutSpec | undefined;
  for (const s of LAYOUTS) {
    const config = await findFile(store, [`${s.dir}/${s.config}`]);
    const lpxelinux = await findFile(store, [`${s.dir}/lpxelinux.0`]);
    if (config && lpxelinux) {
      spec = s;
      Object.assign(files, { config, lpxelinux, ldlinux: await findFile(store, [`${s.dir}/ldlinux.c32`]) });
      break;
    }
  }
  files.kernel = await findFile(store, KERNELS);
  files.initramfs = await findFile(store, INITRAMFS);
  files.airootfs = await findFile(store, AIROOTFS);
  for (const k of Object.keys(files) as (keyof ArchisoFiles)[]) if (files[k] === undefined) delete files[k];
  const wanted: (keyof ArchisoFiles)[] = ['lpxelinux', 'ldlinux', 'config', 'kernel', 'initramfs', 'airootfs'];
  const missing = spec ? wanted.filter((k) => !files[k]) : [];
  return {
    detected: spec !== undefined && files.kernel !== undefined && files.initramfs !== undefined,
    layout: spec?.layout ?? null,
    files,
    dhcp: spec ? { ...spec.dhcp } : null,
    missing,
  };
}
