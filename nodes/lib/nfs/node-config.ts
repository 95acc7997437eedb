/** The pxe-nfs node's editor settings, checked and turned into NfsServer options. */

export type PortmapMode = 'auto' | 'own' | 'rpcbind' | 'off';
const PORTMAP_MODES: readonly PortmapMode[] = ['auto', 'own', 'rpcbind', 'off'];

/** What archiso's own PXE menu mounts (archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt), and the plain root. */
export const DEFAULT_EXPORTS: readonly string[] = ['/run/archiso/bootmnt', '/'];

/** Ports are checked as every server node checks them. */
export { parsePort } from '../server-node';

export function parsePortmapMode(v: unknown): PortmapMode {
  return (PORTMAP_MODES as readonly unknown[]).includes(v) ? (v as PortmapMode) : 'auto';
}

/**
 * Export paths from the editor's comma-separated list (the defaults when empty): absolute, no
 * `.` or `..` segments, at most 16 of at most 1024 bytes. Undefined when one is not acceptable.
 */
export function parseExportPaths(v: unknown): string[] | undefined {
  const list = String(v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) return [...DEFAULT_EXPORTS];
  if (list.length > 16) return undefined;
  const ok = list.every((p) => p.startsWith('/') && Buffer.byteLength(p) <= 1024 && !p.includes('\0') && !p.split('/').some((seg) => seg === '.' || seg === '..'));
  // '/run/archiso/bootmnt/' and '/run/archiso/bootmnt' are one export.
  return ok ? [...new Set(list.map((p) => (p.length > 1 ? p.replace(/\/+$/, '') || '/' : p)))] : undefined;
}
